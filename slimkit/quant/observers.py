"""Observers: turn the statistics of the tensors they see into (scale, zero_point).

One typed config per observer (MinMax, MovingAverage, Percentile, MSE, Entropy) and one
registry from config type to implementation. Observers are modules so their running state
travels with the model (checkpoints, DDP broadcast); `convert` drops them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from slimkit.errors import ConfigError
from slimkit.quant.granularity import PerChannel, PerTensor
from slimkit.quant.qscheme import QScheme, amin_amax, fake_quantize


@dataclass(frozen=True)
class MinMax:
    """Running min / max of everything seen."""


@dataclass(frozen=True)
class MovingAverage:
    """EMA of per-batch min / max: lo ← lo + momentum · (batch_lo − lo)."""

    momentum: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 < self.momentum <= 1.0:
            raise ConfigError(f"MovingAverage.momentum={self.momentum} must be in (0, 1]")


@dataclass(frozen=True)
class Percentile:
    """Clip at the q-th percentile (and 100 − q for the low side), averaged over batches."""

    q: float = 99.99

    def __post_init__(self) -> None:
        if not 50.0 < self.q <= 100.0:
            raise ConfigError(f"Percentile.q={self.q} must be in (50, 100]")


@dataclass(frozen=True)
class MSE:
    """Search clipping ratios in [min_ratio, 1] of the min/max range for the least MSE."""

    grid: int = 100
    min_ratio: float = 0.1

    def __post_init__(self) -> None:
        if self.grid < 2 or not 0.0 < self.min_ratio < 1.0:
            raise ConfigError(f"MSE(grid={self.grid}, min_ratio={self.min_ratio}): need grid ≥ 2 "
                              "and 0 < min_ratio < 1")


@dataclass(frozen=True)
class Entropy:
    """TensorRT-style calibration: the clipping threshold that minimises KL(P ‖ Q)."""

    bins: int = 2048


ObserverConfig = MinMax | MovingAverage | Percentile | MSE | Entropy


# recipe / preset spelling → observer config
OBSERVER_NAMES = {"minmax": MinMax, "ema": MovingAverage, "percentile": Percentile, "mse": MSE,
             "entropy": Entropy}


class Observer(nn.Module):
    """Base: keeps flat (R,) `lo` / `hi` buffers, allocated on the first batch."""

    def __init__(self, cfg: ObserverConfig, scheme: QScheme) -> None:
        super().__init__()
        self.cfg, self.scheme = cfg, scheme
        self.register_buffer("lo", torch.empty(0))
        self.register_buffer("hi", torch.empty(0))

    @property
    def initialized(self) -> bool:
        return self.lo.numel() > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.batch_range(x)
        if not self.initialized:
            self.lo, self.hi = lo, hi
        else:
            self.lo, self.hi = self.merge(lo, hi)
        return x

    def batch_range(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return amin_amax(x, self.scheme.granularity)

    def merge(self, lo, hi):
        return torch.minimum(self.lo, lo), torch.maximum(self.hi, hi)

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.initialized:
            raise ConfigError(f"{type(self).__name__} has seen no data: calibrate before freezing")
        lo, hi = self.clip_range()
        return self.scheme.qparams(lo, hi)

    def clip_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lo, self.hi

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Buffers are sized by the first batch; take the checkpoint's sizes when resuming.
        for name in ("lo", "hi"):
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class MinMaxObserver(Observer):
    pass


class MovingAverageObserver(Observer):
    def merge(self, lo, hi):
        m = self.cfg.momentum
        return self.lo + m * (lo - self.lo), self.hi + m * (hi - self.hi)


class PercentileObserver(Observer):
    """Per-batch percentiles, averaged over batches (counted in `n`)."""

    MAX_COLS = 1 << 20  # torch.quantile's input limit is 16M; a strided sample is plenty

    def __init__(self, cfg, scheme):
        super().__init__(cfg, scheme)
        self.register_buffer("n", torch.zeros((), dtype=torch.long))

    def batch_range(self, x):
        v = self.scheme.granularity.view(x.detach().float())
        if v.shape[1] > self.MAX_COLS:
            v = v[:, :: v.shape[1] // self.MAX_COLS + 1]
        q = torch.tensor([1.0 - self.cfg.q / 100.0, self.cfg.q / 100.0], device=v.device)
        lo_hi = torch.quantile(v, q, dim=1)  # (2, R)
        return lo_hi[0], lo_hi[1]

    def merge(self, lo, hi):
        self.n += 1
        w = 1.0 / (self.n.item() + 1)
        return self.lo + w * (lo - self.lo), self.hi + w * (hi - self.hi)


class MSEObserver(Observer):
    """Keeps a strided sample of each row; picks the clipping ratio with the least MSE."""

    COLS_PER_BATCH = 4096
    MAX_BATCHES = 64  # in QAT an observer sees every step: keep the most recent samples only

    def __init__(self, cfg, scheme):
        super().__init__(cfg, scheme)
        self._samples: list[torch.Tensor] = []

    def forward(self, x):
        v = self.scheme.granularity.view(x.detach().float())
        self._samples.append(v[:, :: max(1, v.shape[1] // self.COLS_PER_BATCH)])
        del self._samples[: -self.MAX_BATCHES]
        return super().forward(x)

    def clip_range(self):
        if not self._samples:  # restored from a checkpoint: only the range survives
            return self.lo, self.hi
        v = torch.cat(self._samples, dim=1)  # (R, samples)
        best_err = torch.full((v.shape[0],), float("inf"), device=v.device)
        best = torch.ones(v.shape[0], device=v.device)
        for ratio in torch.linspace(self.cfg.min_ratio, 1.0, self.cfg.grid, device=v.device):
            s, z = self.scheme.qparams(self.lo * ratio, self.hi * ratio)
            err = (fake_quantize(v, s, z, _rowwise(self.scheme)) - v).pow(2).mean(dim=1)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best = torch.where(better, ratio, best)
        return self.lo * best, self.hi * best


def _rowwise(scheme: QScheme) -> QScheme:
    """The same scheme applied to an (R, N) view, one qparam row per row."""
    g = PerTensor() if isinstance(scheme.granularity, PerTensor) else PerChannel(0)
    return QScheme(scheme.bits, scheme.symmetric, scheme.signed, g, "nearest")


class EntropyObserver(Observer):
    """Histogram of |x| over [0, amax]; threshold = argmin KL(P ‖ Q) (TensorRT entropy)."""

    def __init__(self, cfg, scheme):
        if not isinstance(scheme.granularity, PerTensor) or scheme.bits > 8:
            raise ConfigError(
                "Entropy observer supports per-tensor schemes of 2..8 bits, "
                f"not {scheme.describe()}"
            )
        super().__init__(cfg, scheme)
        self.register_buffer("hist", torch.zeros(cfg.bins, dtype=torch.float64))
        self.register_buffer("amax", torch.zeros((), dtype=torch.float64))

    def forward(self, x):
        a = x.detach().abs().float().reshape(-1)
        new_amax = max(float(a.max()), float(self.amax), 1e-12)
        if new_amax > float(self.amax) and self.hist.sum() > 0:
            self.hist = _rebin(self.hist, float(self.amax), new_amax)
        self.amax.fill_(new_amax)
        self.hist += torch.histc(a, bins=self.cfg.bins, min=0.0, max=new_amax).double()
        return super().forward(x)

    def clip_range(self):
        t = _kl_threshold(self.hist.numpy(), float(self.amax), self.scheme.qmax + 1)
        return torch.clamp(self.lo, min=-t), torch.clamp(self.hi, max=t)


def _rebin(hist: torch.Tensor, old_max: float, new_max: float) -> torch.Tensor:
    """Move counts from bins over [0, old_max] into the same number of bins over [0, new_max]."""
    n = hist.numel()
    centers = (torch.arange(n, dtype=torch.float64) + 0.5) * old_max / n
    idx = torch.clamp((centers / new_max * n).long(), max=n - 1)
    return torch.zeros_like(hist).index_add_(0, idx, hist)


def _kl_threshold(hist: np.ndarray, amax: float, levels: int) -> float:
    bins = hist.size
    width = amax / bins
    best_kl, best_i = np.inf, bins
    for i in range(levels, bins + 1):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()  # outliers clipped into the last bin
        chunk = np.arange(i) * levels // i  # which of `levels` quantized bins each bin joins
        nonzero = p > 0
        total = np.bincount(chunk, weights=hist[:i], minlength=levels)
        count = np.bincount(chunk, weights=nonzero, minlength=levels)
        q = np.where(nonzero, total[chunk] / np.maximum(count[chunk], 1), 0.0)
        ps, qs = p.sum(), q.sum()
        if ps == 0 or qs == 0:
            continue
        p, q = p / ps, q / qs
        q = np.where(nonzero & (q == 0), 1e-8, q)  # smoothing: a clipped tail must not cost ∞
        kl = float(np.sum(p[nonzero] * np.log(p[nonzero] / q[nonzero])))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return (best_i + 0.5) * width


OBSERVERS: dict[type, type[Observer]] = {
    MinMax: MinMaxObserver,
    MovingAverage: MovingAverageObserver,
    Percentile: PercentileObserver,
    MSE: MSEObserver,
    Entropy: EntropyObserver,
}


def make_observer(cfg: ObserverConfig, scheme: QScheme) -> Observer:
    if type(cfg) not in OBSERVERS:
        raise ConfigError(f"observer {cfg!r} unknown; allowed: {[c.__name__ for c in OBSERVERS]}")
    return OBSERVERS[type(cfg)](cfg, scheme)
