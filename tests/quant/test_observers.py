"""Observers on known distributions give the expected range ordering."""

import pytest
import torch

from slimkit.errors import ConfigError
from slimkit.quant import MSE, Entropy, MinMax, MovingAverage, Percentile, PerChannel, QScheme
from slimkit.quant.observers import make_observer

S8 = QScheme(8, granularity=QScheme().granularity)


def _amax(cfg, batches, scheme=S8):
    obs = make_observer(cfg, scheme)
    for b in batches:
        obs(b)
    s, _ = obs.qparams()
    return (s * scheme.qmax).max().item()


def _gauss_with_outliers(n_batches=4):
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(20_000, generator=g) for _ in range(n_batches)]
    batches[0][:5] = 30.0  # rare large outliers
    return batches


def test_ordering_on_gaussian_with_outliers():
    b = _gauss_with_outliers()
    mm, ema = _amax(MinMax(), b), _amax(MovingAverage(0.1), b)
    pct, mse, kl = _amax(Percentile(99.9), b), _amax(MSE(), b), _amax(Entropy(), b)
    assert mm == pytest.approx(30.0)
    assert ema < mm  # later outlier-free batches pull the EMA down
    # clipping observers ignore the 5 outliers and land near the Gaussian's bulk
    assert pct < mm and kl < mm
    assert 2.5 < kl < 8 and 2.5 < pct < 12
    assert mse <= mm


def test_all_observers_agree_on_uniform_data():
    g = torch.Generator().manual_seed(1)
    b = [torch.rand(50_000, generator=g) * 2 - 1 for _ in range(3)]
    for cfg in (MinMax(), MovingAverage(), Percentile(99.99), MSE(), Entropy()):
        assert _amax(cfg, b) == pytest.approx(1.0, abs=0.06), cfg


def test_mse_observer_minimises_error_over_minmax_at_4_bits():
    from slimkit.quant.qscheme import fake_quantize

    x = torch.randn(64, 256, generator=torch.Generator().manual_seed(2))
    s4 = QScheme(4, granularity=PerChannel(0))
    errs = {}
    for cfg in (MinMax(), MSE()):
        obs = make_observer(cfg, s4)
        obs(x)
        errs[type(cfg).__name__] = (fake_quantize(x, *obs.qparams(), s4) - x).pow(2).mean()
    assert errs["MSE"] < errs["MinMax"]


def test_per_channel_observer_shapes():
    x = torch.randn(8, 3, 5)
    obs = make_observer(MinMax(), QScheme(8, granularity=PerChannel(1)))
    obs(x)
    s, z = obs.qparams()
    assert s.shape == (3,) and z.shape == (3,)


def test_entropy_rejects_per_channel():
    with pytest.raises(ConfigError, match="Entropy observer supports per-tensor"):
        make_observer(Entropy(), QScheme(8, granularity=PerChannel(0)))


def test_observer_without_data_is_an_error():
    with pytest.raises(ConfigError, match="has seen no data"):
        make_observer(MinMax(), S8).qparams()


def test_observer_state_loads_into_a_fresh_observer():
    a = make_observer(MovingAverage(), S8)
    a(torch.randn(100))
    b = make_observer(MovingAverage(), S8)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.qparams()[0], b.qparams()[0])
