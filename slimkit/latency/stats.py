"""How sure a measured ratio is: a bootstrap over interleaved rounds, and when to stop.

Each round times every candidate back to back (measure.py), so a slow spell of the machine
hits all candidates of that round alike. A ratio's 95% interval resamples whole rounds — the
two candidates' times of one round stay together — and recomputes median / median. A ratio
is *noisy* when its interval is wider than ±NOISY of the ratio, or when the machine's load
exceeded its cores while it was measured: such a ratio is shown with its interval and never
put in a headline sentence.
"""

from __future__ import annotations

import os

import numpy as np

DRAWS = 400  # bootstrap resamples: the interval's ends move < 1% between seeds at this count
NOISY = 0.10  # a ratio whose interval's half-width exceeds this share of it is noisy


def ratio_interval(base: list[list[float]], other: list[list[float]],
                   seed: int = 0) -> tuple[float, float, float]:
    """(ratio, low, high): median(base) / median(other) and its 95% percentile-bootstrap
    interval, resampling rounds (each a list of one candidate's times in that round)."""
    b, o = _rounds(base), _rounds(other)
    ratio = float(np.median(b) / np.median(o))
    if len(b) < 2:
        return ratio, 0.0, float("inf")
    idx = np.random.default_rng(seed).integers(0, len(b), (DRAWS, len(b)))
    draws = (np.median(b[idx].reshape(DRAWS, -1), axis=1)
             / np.median(o[idx].reshape(DRAWS, -1), axis=1))
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return ratio, float(lo), float(hi)


def _rounds(times: list[list[float]]) -> np.ndarray:
    width = min(len(r) for r in times)  # rounds of equal length (a cut round would skew)
    return np.array([r[:width] for r in times], dtype=np.float64)  # (rounds, runs)


def half_width(ratio: float, lo: float, hi: float) -> float:
    """The interval's half-width as a share of the ratio."""
    return (hi - lo) / 2 / ratio if ratio > 0 else float("inf")


def overloaded(load: float | None = None) -> bool:
    """The 1-minute load average exceeds the cores this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    load = os.getloadavg()[0] if load is None else load
    return load > cores


def settled(times: list[float], window: int = 3, tol: float = 0.05) -> bool:
    """Warm-up is over when the median of the last `window` runs is within `tol` of the
    median of the `window` runs before them (caches, allocators, JIT paths have settled)."""
    if len(times) < 2 * window:
        return False
    last, before = np.median(times[-window:]), np.median(times[-2 * window:-window])
    return abs(last - before) <= tol * before


def format_ratio(ratio: float, lo: float, hi: float, noisy: bool) -> str:
    """'3.40× (3.10–3.70)', with ' noisy' where the interval or the load says so."""
    return f"{ratio:.2f}× ({lo:.2f}–{hi:.2f})" + (" noisy" if noisy else "")


__all__ = ["DRAWS", "NOISY", "format_ratio", "half_width", "overloaded", "ratio_interval",
           "settled"]
