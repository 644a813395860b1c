import pytest
import torch

from slimkit.errors import ConfigError
from slimkit.quant import NonUniformScheme, PerTensor, QScheme, sqnr
from slimkit.quant.qscheme import amin_amax, fake_quantize


@pytest.fixture
def w():
    return torch.randn(16, 32, 3, 3, generator=torch.Generator().manual_seed(0)) * 0.1


def _roundtrip(w, scheme):
    return scheme.decode(*scheme.encode(w))


def test_pow2_values_are_signed_powers_of_two_of_the_channel_max(w):
    s = NonUniformScheme("pow2", bits=4)
    y = _roundtrip(w, s)
    m = w.reshape(16, -1).abs().amax(1).reshape(-1, 1, 1, 1)
    ratio = (y.abs() / m)[y != 0]
    exps = torch.log2(ratio)
    assert torch.equal(exps, exps.round())  # exact powers of two
    assert exps.min() >= -6 and exps.max() <= 0  # 7 magnitudes for 4 bits (sign + zero)
    assert torch.equal(torch.sign(y[y != 0]), torch.sign(w[y != 0]))
    codes, _ = s.encode(w)
    assert codes.min() >= -8 and codes.max() <= 7


def test_kmeans_is_deterministic_and_uses_at_most_2_bits_values(w):
    s = NonUniformScheme("kmeans", bits=3, seed=5)
    y1, y2 = _roundtrip(w, s), _roundtrip(w, s)
    assert torch.equal(y1, y2)
    assert y1.unique().numel() <= 8
    # a codebook fitted to the data beats a uniform per-tensor grid of the same size
    u = QScheme(3, granularity=PerTensor())
    uniform = fake_quantize(w, *u.qparams(*amin_amax(w, u.granularity)), u)
    assert sqnr(w, y1) > sqnr(w, uniform)


def test_binary_is_sign_times_mean_abs_per_channel(w):
    y = _roundtrip(w, NonUniformScheme("binary", bits=1))
    alpha = w.reshape(16, -1).abs().mean(1).reshape(-1, 1, 1, 1)
    ref = torch.where(w >= 0, 1.0, -1.0) * alpha
    assert torch.allclose(y, ref)


def test_ternary_follows_twn_threshold(w):
    y = _roundtrip(w, NonUniformScheme("ternary", bits=2))
    wc = w.reshape(16, -1)
    delta = 0.7 * wc.abs().mean(1, keepdim=True)
    keep = wc.abs() > delta
    alpha = (wc.abs() * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True)
    assert torch.allclose(y.reshape(16, -1), torch.sign(wc) * keep * alpha)


def test_bad_nonuniform_configs():
    with pytest.raises(ConfigError, match="NonUniformScheme.kind='log'"):
        NonUniformScheme("log")
    with pytest.raises(ConfigError, match=r"kind='binary'\).bits=4 not allowed"):
        NonUniformScheme("binary", bits=4)
