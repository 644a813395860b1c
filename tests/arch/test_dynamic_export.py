"""Dynamic int8 → ONNX Runtime integer operators: bit-exact where the math allows, exact per
target (7-bit weights where u8s8 pairs saturate), and the ops ORT runs."""

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import slimkit as sk
from slimkit.deploy.emulate import saturation_report
from slimkit.deploy.kernels import to_kernels
from slimkit.deploy.lowering import ExportError
from slimkit.deploy.runtimes import session


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 16)).eval()


def _x(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1)) * 3


def test_per_token_export_is_bit_exact_with_the_integer_kernels(tmp_path):
    """The codes are slimkit's (x · 1/s, round half to even), the product is exact int32 and
    the epilogue is Int8DynamicLinear's order: ORT and slimkit's torch kernels agree bit for
    bit; the float simulation (fake-quant + float matmul) within float rounding."""
    q = sk.quantize(_mlp(), sk.QuantConfig.dynamic())
    x = _x(37, 64)
    sk.export(q, x, tmp_path / "m.onnx")
    out = session(tmp_path / "m.onnx", "ort").run(x)
    kernels = to_kernels(q)
    with torch.no_grad():
        np.testing.assert_array_equal(out, kernels(x).numpy())
        sim = q(x).numpy()
    assert np.abs(out - sim).max() <= 1e-5 * np.abs(sim).max()
    ops = {n.op_type for n in onnx.load(tmp_path / "m.onnx").graph.node}
    assert "MatMulInteger" in ops and "Gemm" not in ops


def test_per_tensor_export_is_ort_fused_dynamic_matmul(tmp_path):
    q = sk.quantize(_mlp(), sk.QuantConfig.dynamic(activations="per_tensor"))
    x = _x(8, 5, 64)  # (B, T, in): flattened to tokens for the kernel
    sk.export(q, x, tmp_path / "m.onnx")
    ops = [n.op_type for n in onnx.load(tmp_path / "m.onnx").graph.node]
    assert ops.count("DynamicQuantizeMatMul") == 2
    with torch.no_grad():
        sim = q(x).numpy()
    out = session(tmp_path / "m.onnx", "ort").run(x)
    # ORT divides by the scale where slimkit multiplies by its reciprocal: a rare tie lands
    # one code apart; outputs agree to a small fraction of one activation step
    assert np.abs(out - sim).max() <= 2e-3 * np.abs(sim).max()


@pytest.mark.parametrize(("target", "saturates"), [("x86-vnni", True), ("x86-avx2", False)])
def test_dynamic_weights_fit_the_targets_kernels(target, saturates, tmp_path):
    """On x86 without VNNI ORT's u8s8 kernels (MatMulInteger too) add product pairs in int16:
    the plan gives 7-bit weights there, and the export carries them."""
    q = sk.quantize(_mlp(), sk.QuantConfig.dynamic(), target=target)
    sk.export(q, _x(4, 64), tmp_path / "m.onnx", target=None)
    rep = saturation_report(tmp_path / "m.onnx")
    assert len(rep) == 2 and all(r.op == "MatMulInteger" for r in rep)
    assert any(r.saturates for r in rep) == saturates


def test_int8_embedding_gathers_rows_bit_exactly(tmp_path):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Embedding(50, 12, padding_idx=0)).eval()
    q = sk.quantize(m, sk.QuantConfig.dynamic())
    ids = torch.randint(0, 50, (3, 7))
    sk.export(q, ids, tmp_path / "e.onnx")
    g = onnx.load(tmp_path / "e.onnx").graph
    table = next(i for i in g.initializer if i.name.endswith("weight_quantized"))
    assert table.data_type == onnx.TensorProto.INT8  # the table stays int8 in the file
    with torch.no_grad():
        np.testing.assert_array_equal(session(tmp_path / "e.onnx", "ort").run(ids),
                                      q(ids).numpy())


def test_embedding_with_max_norm_is_refused_by_name(tmp_path):
    m = nn.Sequential(nn.Embedding(20, 4, max_norm=1.0)).eval()
    q = sk.quantize(m, sk.QuantConfig.dynamic())
    with pytest.raises(ExportError, match="'0'.*max_norm"):
        sk.export(q, torch.randint(0, 20, (2, 3)), tmp_path / "e.onnx")


def test_static_bias_initializers_are_named_per_layer(tmp_path):
    """The exporter shares one initializer between equal biases (an nn.TransformerEncoder's
    deep-copied layers start equal): each layer's int32 bias gets its own name."""
    from tests.arch.zoo import build

    model, x = build("vit")
    q = sk.quantize(model, sk.QuantConfig.w8a8(), calib=[x], progress=False)
    sk.export(q, x, tmp_path / "v.onnx")  # onnx.checker: unique initializer names
    names = [i.name for i in onnx.load(tmp_path / "v.onnx").graph.initializer]
    assert len(names) == len(set(names))
