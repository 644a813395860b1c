"""How sure a measured ratio is: a bootstrap over interleaved rounds, and when to stop.

Each round times every candidate back to back (measure.py), so a slow spell of the machine
hits all candidates of that round alike. A ratio's 95% interval is the wider of two:
- a bootstrap over rounds: whole rounds resampled — the two candidates' times of one round
  stay together — and median / median recomputed;
- batch means over time: the rounds cut into BATCHES consecutive runs of rounds, the ratio
  of each, and a Student-t interval around the ratio from their spread. Rounds are not
  independent: a slow spell that hits the candidates unalike (a thread pool's wake-ups on a
  busy host, a tiny model at batch 1) lasts seconds, and the bootstrap alone — which treats
  rounds as independent — gave ±5% intervals to ratios that moved ±25% between processes
  (benchmarks/measure_core.py).
A ratio
is *noisy* when its interval is wider than ±NOISY of the ratio, or when the machine was
contended while it was measured — other processes (and other VMs: steal time) keeping more
than OTHERS of the machine's CPUs busy during the rounds (/proc/stat), or, where that cannot
be read, the 1-minute load average above the cores: such a ratio is shown with its interval
and never put in a headline sentence.
"""

from __future__ import annotations

import os
import time

import numpy as np

DRAWS = 400  # bootstrap resamples: the interval's ends move < 1% between seeds at this count
NOISY = 0.10  # a ratio whose interval's half-width exceeds this share of it is noisy
BATCHES = 5  # consecutive batches of rounds for the batch-means interval
T95 = 2.776  # Student's t, 97.5th percentile, BATCHES - 1 = 4 degrees of freedom
OTHERS = 0.25  # other processes busy on more than this share of the CPUs: contended


def ratio_interval(base: list[list[float]], other: list[list[float]],
                   seed: int = 0) -> tuple[float, float, float]:
    """(ratio, low, high): median(base) / median(other) and its 95% interval, the wider of
    the bootstrap over rounds and the batch means (module docstring); rounds are lists of
    one candidate's times in that round, in the order they ran."""
    b, o = _rounds(base), _rounds(other)
    ratio = float(np.median(b) / np.median(o))
    if len(b) < 2:
        return ratio, 0.0, float("inf")
    idx = np.random.default_rng(seed).integers(0, len(b), (DRAWS, len(b)))
    draws = (np.median(b[idx].reshape(DRAWS, -1), axis=1)
             / np.median(o[idx].reshape(DRAWS, -1), axis=1))
    lo, hi = (float(v) for v in np.percentile(draws, [2.5, 97.5]))
    drift = _batch_means(b, o)
    return ratio, min(lo, ratio - drift), max(hi, ratio + drift)


def _batch_means(b: np.ndarray, o: np.ndarray) -> float:
    """Half-width of the Student-t 95% interval of the ratio from BATCHES consecutive
    batches of rounds (0 with too few rounds to cut)."""
    per = len(b) // BATCHES
    if per < 1:
        return 0.0
    ratios = [np.median(b[i * per:(i + 1) * per]) / np.median(o[i * per:(i + 1) * per])
              for i in range(BATCHES)]
    return float(T95 * np.std(ratios, ddof=1) / np.sqrt(BATCHES))


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


def cpu_snapshot() -> tuple[float, float, float, int] | None:
    """(wall s, CPU-seconds the whole machine has been busy, this process's CPU-seconds, CPUs);
    None where /proc/stat is not readable (not Linux)."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal …: all but idle and iowait are busy
    v = [int(x) for x in lines[0].split()[1:9]]
    busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    own = os.times()
    return time.monotonic(), busy, own.user + own.system, cpus


def others_share(before, after) -> float | None:
    """The share of the machine's CPUs that other processes kept busy between two
    cpu_snapshot()s (0: only this process ran; 1: every CPU busy with others)."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    wall = after[0] - before[0]
    others = (after[1] - before[1]) - (after[2] - before[2])
    return max(0.0, others) / (wall * after[3])


def contended(load: float | None, others: float | None) -> bool:
    """What makes every ratio of a measurement noisy, whatever its interval: other processes
    busy on more than OTHERS of the CPUs during the rounds where /proc/stat says so, else a
    load average above the cores. (The load average trails by a minute both ways: measured
    beside a neighbour that had just started it stayed below the cores for 30 s, and after
    the neighbour stopped it flagged 6 quiet runs in a row — benchmarks/measure_core.py.)"""
    if others is not None:
        return others > OTHERS
    return overloaded(load)


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


__all__ = ["DRAWS", "NOISY", "OTHERS", "contended", "cpu_snapshot", "format_ratio",
           "half_width", "others_share", "overloaded", "ratio_interval", "settled"]
