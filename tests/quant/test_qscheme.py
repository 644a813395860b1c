"""Tier 1: linear quantization is bit-exact against torch's own fake-quant ops."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from slimkit.errors import ConfigError
from slimkit.quant import PerChannel, PerGroup, PerTensor, PerToken, QScheme, sqnr
from slimkit.quant.qscheme import amin_amax, dequantize, fake_quantize, quantize

SCHEMES = [(sym, signed) for sym in (True, False) for signed in (True, False)]


def _qp(x, scheme):
    return scheme.qparams(*amin_amax(x, scheme.granularity))


@pytest.mark.parametrize("sym,signed", SCHEMES)
@pytest.mark.parametrize("bits", [8, 4, 2])
def test_per_tensor_bit_exact_vs_torch(sym, signed, bits):
    g = torch.Generator().manual_seed(bits)
    for scale_exp in (-3, 0, 3):
        x = torch.randn(7, 33, generator=g) * 10.0**scale_exp + 0.3
        s = QScheme(bits, sym, signed, PerTensor())
        sc, zp = _qp(x, s)
        ref = torch.fake_quantize_per_tensor_affine(x, sc.item(), int(zp.item()), s.qmin, s.qmax)
        assert torch.equal(fake_quantize(x, sc, zp, s), ref)


@pytest.mark.parametrize("sym,signed", SCHEMES)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_per_channel_bit_exact_vs_torch(sym, signed, axis):
    x = torch.randn(6, 5, 9, generator=torch.Generator().manual_seed(1)) * 3
    s = QScheme(8, sym, signed, PerChannel(axis))
    sc, zp = _qp(x, s)
    ref = torch.fake_quantize_per_channel_affine(x, sc, zp, axis % 3, s.qmin, s.qmax)
    assert torch.equal(fake_quantize(x, sc, zp, s), ref)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=4),
    bits=st.sampled_from([2, 3, 4, 5, 6, 7, 8, 16]),
    sym=st.booleans(), signed=st.booleans(),
    magnitude=st.floats(-4, 4), offset=st.floats(-2, 2), seed=st.integers(0, 2**16),
)
def test_quantize_dequantize_quantize_is_idempotent(shape, bits, sym, signed, magnitude, offset,
                                                    seed):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 10**magnitude + offset
    s = QScheme(bits, sym, signed, PerChannel(0) if len(shape) > 1 else PerTensor())
    sc, zp = _qp(x, s)
    q1 = quantize(x, sc, zp, s)
    q2 = quantize(dequantize(q1, sc, zp, s), sc, zp, s)
    assert torch.equal(q1, q2)
    y = fake_quantize(x, sc, zp, s)
    assert torch.equal(fake_quantize(y, sc, zp, s), y)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 8), cols=st.integers(32, 96),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]),
    dist=st.sampled_from(["normal", "uniform", "laplace"]),
    magnitude=st.floats(-3, 3), offset=st.floats(-1, 1), sym=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_sqnr_rises_with_bits(rows, cols, dtype, dist, magnitude, offset, sym, seed):
    g = torch.Generator().manual_seed(seed)
    base = {"normal": torch.randn(rows, cols, generator=g),
            "uniform": torch.rand(rows, cols, generator=g) * 2 - 1,
            "laplace": torch.log(torch.rand(rows, cols, generator=g)) * torch.sign(
                torch.rand(rows, cols, generator=g) - 0.5)}[dist]
    x = (base * 10**magnitude + offset * 10**magnitude).to(dtype)
    bits_list = [2, 3, 4, 5, 6, 7, 8] + ([16] if dtype == torch.float32 else [])
    snr = []
    for b in bits_list:
        s = QScheme(b, sym, True, PerChannel(0))
        snr.append(sqnr(x.float(), fake_quantize(x, *_qp(x, s), s).float()))
    # half types round the output itself, so a plateau of ~their precision is allowed at 8 bits
    slack = 0.0 if dtype == torch.float32 else 1.5
    assert all(b >= a - slack for a, b in zip(snr, snr[1:], strict=False)), snr
    assert snr[-1] > snr[0] + 20  # and it really rises


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
@pytest.mark.parametrize("value", [0.0, 2.5, -7.0])
def test_constant_and_zero_tensors_are_exact(bits, value):
    x = torch.full((4, 16), value)
    for sym in (True, False):
        s = QScheme(bits, sym, True, PerChannel(0))
        sc, zp = _qp(x, s)
        assert torch.isfinite(sc).all()
        y = fake_quantize(x, sc, zp, s)
        assert torch.allclose(y, x, atol=1e-6 * max(1.0, abs(value)))


def test_per_group_matches_manual_reshape():
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    s = QScheme(4, granularity=PerGroup(16))
    sc, zp = _qp(w, s)
    assert sc.shape == (8 * 4,)
    # reference: each group of 16 is a per-tensor problem of its own
    ref = torch.cat([
        torch.fake_quantize_per_tensor_affine(grp, (grp.abs().max() / 7).item(), 0, -8, 7)
        for grp in w.reshape(-1, 16)
    ]).reshape(8, 64)
    assert torch.equal(fake_quantize(w, sc, zp, s), ref)


def test_per_token_is_one_scale_per_row():
    x = torch.randn(2, 5, 12)
    s = QScheme(8, False, False, PerToken())
    sc, zp = _qp(x, s)
    assert sc.shape == (10,)
    y = fake_quantize(x, sc, zp, s)
    assert sqnr(x, y) > 35


def test_stochastic_rounding_is_unbiased_and_seeded():
    x = torch.full((200_000,), 0.3)
    s = QScheme(8, granularity=PerTensor(), rounding="stochastic")
    sc, zp = torch.tensor([1.0]), torch.tensor([0], dtype=torch.int32)
    y1 = fake_quantize(x, sc, zp, s, generator=torch.Generator().manual_seed(3))
    y2 = fake_quantize(x, sc, zp, s, generator=torch.Generator().manual_seed(3))
    assert torch.equal(y1, y2)
    assert set(y1.unique().tolist()) == {0.0, 1.0}
    assert abs(y1.mean().item() - 0.3) < 0.005


@pytest.mark.parametrize("bits", [1, 9, 32, 0, "8"])
def test_bits_out_of_range_is_a_clear_error(bits):
    with pytest.raises(ConfigError, match=r"QScheme.bits=.*allowed.*\[2, 3, 4, 5, 6, 7, 8, 16\]"):
        QScheme(bits)


def test_bad_rounding_and_group_errors():
    with pytest.raises(ConfigError, match="QScheme.rounding='floor'"):
        QScheme(8, rounding="floor")
    with pytest.raises(ConfigError, match=r"PerGroup\(size=5\) does not divide the input dim 64"):
        PerGroup(5).check(torch.Size([8, 64]))
    with pytest.raises(ConfigError, match="PerGroup.size=0"):
        PerGroup(0)


def test_sqnr_reference_values():
    x = torch.ones(100)
    assert sqnr(x, x) == math.inf
    assert sqnr(x, x * 1.1) == pytest.approx(20.0)
