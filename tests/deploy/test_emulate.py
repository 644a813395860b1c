"""int8 on CPUs without VNNI, proven on any machine: a numpy emulation of the u8s8 kernel's
int16 pair saturation, a layout-free saturation check of every exported weight, and ONNX Runtime
itself on an emulated AVX2 CPU (qemu-x86_64 -cpu Haswell) where qemu-user is installed."""

import os
import platform
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import slimkit as sk
from slimkit.deploy.emulate import (
    INT16_MAX,
    saturation_report,
    u8s8_gemm_exact,
    u8s8_gemm_pairs,
    worst_pair,
)
from slimkit.deploy.onnx_export import SaturationWarning
from slimkit.deploy.parity import ParityWarning, compare, likely_cause
from slimkit.quant.modules import QuantConv2d, QuantLayer
from slimkit.target import resolve_target
from tests.deploy.nets import MLP

ORT_RUN = Path(__file__).with_name("ort_run.py")
QEMU = shutil.which("qemu-x86_64")
needs_qemu = pytest.mark.skipif(
    QEMU is None or platform.machine() != "x86_64",
    reason="qemu-user is not installed (make test installs it where apt-get is available)")


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_pair_emulation_is_exact_for_7_bit_weights():
    for seed in range(5):
        a = _rng(seed).integers(0, 256, (40, 75)).astype(np.uint8)  # odd K: padded
        w = _rng(seed + 9).integers(-64, 64, (12, 75)).astype(np.int8)
        np.testing.assert_array_equal(u8s8_gemm_pairs(a, w), u8s8_gemm_exact(a, w))


def test_pair_emulation_saturates_full_range_weights():
    a = np.full((1, 4), 255, np.uint8)
    w = np.array([[127, 127, -128, -128]], np.int8)
    assert u8s8_gemm_exact(a, w)[0, 0] == 255 * (254 - 256)
    assert u8s8_gemm_pairs(a, w)[0, 0] == INT16_MAX + (-INT16_MAX - 1)  # both pairs clamp


def test_worst_pair_is_the_largest_pair_any_layout_can_form():
    rng = _rng(3)
    for _ in range(50):
        w = rng.integers(-128, 128, (1, 7)).astype(np.int8)
        v = w[0].astype(np.int64)
        brute = 0
        for i in range(7):
            for j in range(i + 1, 7):
                same = v[i] * v[j] > 0
                pair = abs(v[i]) + abs(v[j]) if same else max(abs(v[i]), abs(v[j]))
                brute = max(brute, 255 * pair)
        assert worst_pair(w) == brute


def _nets():
    torch.manual_seed(0)
    conv1d = nn.Sequential(nn.Conv1d(4, 16, 3, padding=1), nn.ReLU(), nn.Conv1d(16, 8, 3))
    dw = nn.Sequential(nn.Conv2d(4, 16, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, groups=16),
                       nn.ReLU(), nn.Conv2d(16, 8, 1))
    return {"mlp-3d": (MLP(24, 64, 10), (4, 5, 24)), "conv1d": (conv1d, (4, 4, 16)),
            "depthwise": (dw, (4, 4, 9, 9))}


def _quantized_weights(q) -> int:
    return sum(isinstance(m, QuantLayer) for m in q.modules())


@pytest.mark.parametrize("signed", [False, True])
def test_no_exported_int8_weight_saturates_on_the_portable_target(trained_cnn, digits,
                                                                  tiny_resnet, signed, tmp_path):
    models = {"digits": (trained_cnn, None), "resnet": (tiny_resnet, (4, 3, 32, 32)), **_nets()}
    cfg = sk.QuantConfig.w8a8(signed_acts=signed)
    for name, (model, shape) in models.items():
        x = next(iter(digits[0]))[0] if shape is None else torch.randn(*shape)
        q = sk.quantize(model, cfg, calib=[x], progress=False, target="portable")
        with warnings.catch_warnings():
            warnings.simplefilter("error", SaturationWarning)  # portable never warns
            p = sk.export(q, x, tmp_path / f"{name}.onnx", target="x86-avx2")
        rep = saturation_report(p)
        assert len(rep) == _quantized_weights(q), name  # every int8 layer was checked
        assert all(not s.saturates for s in rep), (name, [s for s in rep if s.saturates])


def test_full_range_weights_saturate_and_export_says_so(trained_cnn, digits, tmp_path):
    x = next(iter(digits[0]))[0]
    q = sk.quantize(trained_cnn, sk.QuantConfig.w8a8(), calib=[x], progress=False,
                    target="x86-vnni")
    with pytest.warns(SaturationWarning, match="int16"):
        p = sk.export(q, x, tmp_path / "d8.onnx", target="x86-avx2")
    assert any(s.saturates for s in saturation_report(p))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SaturationWarning)
        sk.export(q, x, tmp_path / "ok.onnx", target="x86-vnni")  # exact there: no warning
    assert "no VNNI" in likely_cause(p, "ort", resolve_target("x86-avx2"))


def _conv_inputs(q, x) -> dict[str, np.ndarray]:
    """Each quantized conv's input as uint8 codes, unfolded to (positions, K)."""
    caught = {}
    for m in q.modules():
        if isinstance(m, QuantConv2d) and m.input_quantizer is not None:
            def hook(mod, args, out, m=m):
                s, z = m.input_quantizer.scale, m.input_quantizer.zero_point
                codes = torch.round(out / s) + z  # (N, C, H, W) on the u8 grid
                lay = m.layer
                cols = nn.functional.unfold(codes, lay.kernel_size, lay.dilation, lay.padding,
                                            lay.stride)  # (N, C·kh·kw, L), padding = code 0
                pad_fix = nn.functional.unfold(torch.ones_like(codes), lay.kernel_size,
                                               lay.dilation, lay.padding, lay.stride)
                cols = cols + (1 - pad_fix) * z  # padded positions hold the zero point
                caught[m.name] = cols.permute(0, 2, 1).reshape(-1, cols.shape[1]).numpy()
            m.input_quantizer.register_forward_hook(hook)
    with torch.no_grad():
        q(x)
    return {k: v.astype(np.uint8) for k, v in caught.items()}


def test_emulated_kernel_on_real_digits_saturates_8_bit_and_not_7_bit(trained_cnn, digits):
    x, _ = next(iter(digits[1]))  # 256 real test images
    mismatched = {}
    for target in ("x86-vnni", "portable"):
        q = sk.quantize(trained_cnn, sk.QuantConfig.w8a8(), calib=digits[0], progress=False,
                        target=target)
        inputs = _conv_inputs(q, x)
        bad = 0
        for m in q.modules():
            if isinstance(m, QuantConv2d):
                w = m.packed.codes().reshape(m.packed.shape[0], -1).numpy().astype(np.int8)
                a = inputs[m.name]
                bad += int((u8s8_gemm_pairs(a, w) != u8s8_gemm_exact(a, w)).sum())
        mismatched[target] = bad
    assert mismatched["x86-vnni"] > 0  # real data does hit the int16 limit with 8-bit weights
    assert mismatched["portable"] == 0


def test_check_parity_warns_with_a_cause(trained_cnn, digits, tmp_path):
    x = next(iter(digits[1]))[0][:64]
    q = sk.quantize(trained_cnn, sk.QuantConfig.w8a8(), calib=[x], progress=False)
    p = sk.export(q, x, tmp_path / "q.onnx")
    with pytest.warns(ParityWarning, match="likely cause"):
        sk.check_parity(q, p, x, step=1e-9)  # a step no runtime meets: the floor trips
    with warnings.catch_warnings():
        warnings.simplefilter("error", ParityWarning)
        sk.check_parity(q, p, x)  # this machine's own target: exact, silent


# ---- ONNX Runtime itself on an emulated AVX2 CPU ------------------------------------------
def _under_qemu(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([QEMU, "-cpu", "Haswell", sys.executable, str(ORT_RUN), *args],
                          capture_output=True, text=True, timeout=600, env=env)


def _emulated(path: Path, x: np.ndarray, tmp_path: Path) -> np.ndarray:
    xin, out = tmp_path / f"{path.stem}.in.npy", tmp_path / f"{path.stem}.out.npy"
    np.save(xin, x)
    r = _under_qemu(str(path), str(xin), str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    return np.load(out)


@needs_qemu
def test_the_emulated_cpu_is_avx2_without_vnni():
    r = _under_qemu("--cpuid")
    assert r.returncode == 0, r.stderr[-2000:]
    feats = set(r.stdout.split())
    assert "avx2" in feats and not feats & {"avx512f", "avx512_vnni", "avx_vnni", "amx_int8"}


@needs_qemu
def test_emulation_reproduces_onnx_runtime_on_avx2(tmp_path):
    """A u8 × s8 Gemm whose output is requantized: the numpy pair emulation predicts ORT's
    AVX2 result exactly; exact int32 accumulation does not."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = _rng(0).integers(-127, 128, (16, 64)).astype(np.int8)
    f32 = lambda v, n: numpy_helper.from_array(np.array(v, np.float32), n)  # noqa: E731
    inits = [f32(1.0, "xs"), numpy_helper.from_array(np.array(0, np.uint8), "xz"),
             numpy_helper.from_array(w, "w"), f32(np.ones(16), "ws"),
             numpy_helper.from_array(np.zeros(16, np.int8), "wz"), f32(4096.0, "ys"),
             numpy_helper.from_array(np.array(128, np.uint8), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
             helper.make_node("Gemm", ["xd", "wd"], ["y0"], transB=1),
             helper.make_node("QuantizeLinear", ["y0", "ys", "yz"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     [None, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 16])],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])
    m.ir_version = 10
    onnx.save(m, tmp_path / "gemm.onnx")
    x = _rng(1).integers(0, 256, (32, 64)).astype(np.float32)
    y = _emulated(tmp_path / "gemm.onnx", x, tmp_path)

    def requant(acc):
        return (np.clip(np.round(acc / 4096) + 128, 0, 255) - 128) * 4096.0

    a = x.astype(np.uint8)
    np.testing.assert_array_equal(y, requant(u8s8_gemm_pairs(a, w)))
    assert np.abs(y - requant(u8s8_gemm_exact(a, w))).max() >= 4096  # saturation is real


@needs_qemu
def test_digits_int8_is_exact_on_an_emulated_avx2_cpu(trained_cnn, digits, tmp_path):
    """The done-bar of the issue, on a CPU this machine does not have: the portable (7-bit)
    model agrees with its simulation; the 8-bit one, exact on VNNI, does not."""
    x, _ = next(iter(digits[1]))  # 256 real test images
    got = {}
    for target in ("portable", "x86-vnni"):
        q = sk.quantize(trained_cnn, sk.QuantConfig.w8a8(), calib=digits[0], progress=False,
                        target=target)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SaturationWarning)
            p = sk.export(q, x[:4], tmp_path / f"{target}.onnx")
        ref = q(x).detach().numpy()
        step = float(ref.max() - ref.min()) / 255
        got[target] = compare(ref, _emulated(p, x.numpy(), tmp_path), step)
    assert got["portable"].within_one_step >= 0.999 and got["portable"].cosine >= 0.9999
    assert got["portable"].top1_agreement == 1.0
    assert got["x86-vnni"].within_one_step < 0.99  # what a user of an AVX2 machine saw
