"""The timing rules every slimkit timer follows — the benchmark's measure.py and the latency
table's sessions alike: warm a callable up until its times settle, then time the callables in
interleaved rounds, a fresh random order each round, each block after one untimed call (the
switch from another session leaves caches cold)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

from slimkit.latency.stats import settled

MAX_WARMUP = 30  # warm-up runs at most, per callable


def warm(run: Callable[[], object], minimum: int) -> int:
    """Call `run` at least `minimum` times and until its times settle (at most MAX_WARMUP);
    returns the calls made."""
    times: list[float] = []
    while len(times) < MAX_WARMUP and (len(times) < minimum or not settled(times)):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return len(times)


def timed_round(runs: Sequence[Callable[[], object] | None], per_round: int,
                rng: random.Random) -> list[list[float]]:
    """One round: each callable (None: skipped) `per_round` times back to back, in a random
    order; milliseconds per call."""
    out: list[list[float]] = [[] for _ in runs]
    live = [i for i, r in enumerate(runs) if r is not None]
    for i in rng.sample(live, len(live)):
        runs[i]()  # re-warm after the switch; not timed
        for _ in range(per_round):
            t = time.perf_counter()
            runs[i]()
            out[i].append((time.perf_counter() - t) * 1e3)
    return out


__all__ = ["MAX_WARMUP", "timed_round", "warm"]
