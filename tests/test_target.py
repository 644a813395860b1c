"""The machine description and the int8 numerics it implies, on every target preset."""

import pytest
import torch

import slimkit as sk
from slimkit.errors import ConfigError
from slimkit.models import DigitsCNN
from slimkit.target import PRESETS, Target, detect, resolve_target


def test_detect_describes_this_machine_once():
    t = detect()
    assert t is detect()  # cached: probed once per process
    assert t.cores >= 1 and t.model and t.arch
    assert t.model in t.describe() and t.isa() in t.describe()
    if "avx512_vnni" in t.features or "amx_int8" in t.features:
        assert "avx512f" in t.features  # both need the AVX-512 state the OS saves
    if t.x86:
        assert "avx2" in t.features  # every machine of this kind has at least AVX2


def test_cpuid_agrees_with_the_kernel_on_this_host():
    from slimkit import _cpuid
    from slimkit.target import _proc_cpuinfo

    info = _cpuid.x86_info() if detect().x86 else None
    if info is None:
        pytest.skip("not x86, or executable pages are not allowed here")
    proc = _proc_cpuinfo()["flags"]
    for f in ("avx2", "avx512f", "avx512_vnni", "amx_int8"):
        assert (f in info[2]) == (f in proc), f


@pytest.mark.parametrize("name, bits", [("x86-avx2", 7), ("portable", 7), ("x86-avx512", 7),
                                        ("x86-vnni", 8), ("x86-amx", 8), ("arm64", 8),
                                        ("arm64-dotprod", 8)])
def test_int8_weight_range_per_target(name, bits):
    t = resolve_target(name)
    assert t.int8_weight_bits()[0] == bits
    assert t.u8s8_pairs_saturate == (bits == 7)


def test_keys_differ_by_machine_and_env_overrides_auto(monkeypatch):
    keys = {t.key() for t in PRESETS.values() if t.source != "portable"}
    assert len(keys) == len(PRESETS) - 1
    monkeypatch.setenv("SLIMKIT_TARGET", "x86-avx2")
    assert resolve_target("auto") is PRESETS["x86-avx2"]
    monkeypatch.setenv("SLIMKIT_TARGET", "auto")
    assert resolve_target("auto") is detect()


def test_unknown_target_names_the_presets():
    with pytest.raises(ConfigError, match="x86-avx2"):
        resolve_target("pentium")


def test_plan_picks_7_bit_weights_where_pairs_saturate():
    cnn = DigitsCNN()
    for cfg in (sk.QuantConfig.w8a8(), sk.QuantConfig.w8a8(signed_acts=True),
                sk.QuantConfig.dynamic()):
        avx2 = sk.resolve_plan(cnn, cfg, "x86-avx2")
        vnni = sk.resolve_plan(cnn, cfg, "x86-vnni")
        assert {e.spec.weight.scheme.bits for e in avx2.quantized()} == {7}
        assert {e.spec.weight.scheme.bits for e in vnni.quantized()} == {8}
        assert "vpmaddubsw" in avx2.notes[0] and "VNNI" in vnni.notes[0]
        assert avx2.target == PRESETS["x86-avx2"].describe()
        assert "7-bit weights for the target" in str(avx2)
    # no 8-bit activations → no int8 GEMM → nothing to change
    for cfg in (sk.QuantConfig.w4a8(), sk.QuantConfig.weight_only(8)):
        plan = sk.resolve_plan(cnn, cfg, "x86-avx2")
        assert plan.notes == () and {e.spec.weight.scheme.bits for e in plan.quantized()} == {
            4 if cfg.name == "w4a8" else 8}
    assert sk.resolve_plan(cnn, sk.QuantConfig.w8a8()).target is None  # no target: as written


def test_quantize_for_avx2_stores_7_bit_codes_and_simulates_them():
    torch.manual_seed(0)
    cnn = DigitsCNN().eval()
    x = torch.randn(32, 1, 8, 8)
    q = sk.quantize(cnn, sk.QuantConfig.w8a8(), calib=[x], progress=False, target="x86-avx2")
    layers = [m for m in q.modules() if isinstance(m, sk.quant.modules.QuantLayer)]
    assert layers and all(m.packed.scheme.bits == 7 for m in layers)
    for m in layers:
        codes = m.packed.codes()
        assert int(codes.abs().max()) == 63  # symmetric 7-bit: amax maps to 63
        assert m.packed.packed.numel() == -(-codes.numel() * 7 // 8)  # packed in 7 bits
    q8 = sk.quantize(cnn, sk.QuantConfig.w8a8(), calib=[x], progress=False, target="x86-amx")
    assert all(m.packed.scheme.bits == 8 for m in q8.modules()
               if isinstance(m, sk.quant.modules.QuantLayer))
    assert sk.sqnr(cnn(x), q(x)) > 25 and sk.sqnr(cnn(x), q8(x)) > sk.sqnr(cnn(x), q(x))


def test_a_target_object_is_accepted_as_is():
    t = Target("x86_64", "AuthenticAMD", "test EPYC", 2, frozenset({"avx2"}))
    assert resolve_target(t) is t and t.int8_weight_bits()[0] == 7
