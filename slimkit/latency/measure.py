"""The measurement core: latency / throughput / memory / size of several candidates, in one
process, every ratio with its interval (sk.benchmark, the benchmark stage and the latency
probes time through here; the per-layer latency model's sessions follow the same rules —
latency/rounds.py: warm-up, interleaved rounds — and read each layer's kernel time from the
runtime's profiler).

Timing follows the project's rule for a drifting machine:
- every session is warmed up until its times settle (rounds.warm, stats.settled);
- then rounds: every candidate runs `runs_per_round` times back to back, the candidates in a
  fresh seeded random order each round, so drift — and whatever a neighbour leaves running —
  hits all alike;
- rounds go on past `rounds`, and for at least `min_s` seconds (a slow spell lasts seconds:
  ten rounds of a fast model take well under one), until every ratio's 95% interval
  (stats.ratio_interval) is within ±`target`, or `cap_s` seconds have passed;
- a ratio whose interval stays wider than ±10%, or measured while the machine was contended
  (load above the cores, or other processes busy on > 25% of the CPUs: stats.contended), is
  marked noisy;
- every round's raw times are kept (BenchResult.raw_ms), so a later reader can recompute.

Each block starts with one untimed call; torch gets the same threads as the runtimes and runs
in inference mode; ONNX Runtime sessions are built without spin-waiting when several
candidates share the machine (an idle pool that spins steals the cores from whichever runs
next: int8 medians measured 2× too slow). Scripts should also set OMP_WAIT_POLICY=PASSIVE
before importing torch, for the same reason. A candidate that fails to load or run gets a
row that says why; the others are measured.
"""

from __future__ import annotations

import gc
import json
import os
import random
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slimkit.batch import as_args
from slimkit.deploy.runtimes import session
from slimkit.latency.machine import environment, machine_line
from slimkit.latency.rounds import timed_round, warm
from slimkit.latency.stats import (
    NOISY,
    contended,
    cpu_snapshot,
    format_ratio,
    half_width,
    others_share,
    ratio_interval,
)


@dataclass
class Candidate:
    name: str
    model: nn.Module | str | Path
    runtime: str | None = None  # for .onnx paths: "ort" (default) or "openvino"
    precision: str = "f32"  # OpenVINO's float ops: f32 | bf16 (bench/choose.py tries both)
    config: dict | None = None  # further OpenVINO CPU properties (sparse weights …)
    reference: int | None = None  # index of the candidate whose outputs this one must match


@dataclass
class Row:
    name: str
    runtime: str
    median_ms: float
    p90_ms: float
    min_ms: float
    throughput: float  # samples / s at the median
    speedup: float  # vs the first candidate's median
    rss_delta_mb: float  # resident memory added by loading + running it
    size_mb: float | None  # model file (or state_dict) size
    size_ratio: float | None  # first candidate's size / this size
    precision: str = "f32"  # the runtime's float precision (not the model's numerics)
    fidelity: dict | None = None  # vs the candidate's reference: cosine, top1 agreement
    ci: tuple[float, float] | None = None  # the speedup's 95% interval
    noisy: bool = False  # the interval is wider than ±10%, or the machine was overloaded
    error: str | None = None  # why this candidate has no times


@dataclass
class BenchResult:
    batch: int
    threads: int
    runs: int  # timed runs per candidate
    rows: list[Row] = field(default_factory=list)
    machine: dict = field(default_factory=dict)  # latency.machine.environment()
    skipped: list[str] = field(default_factory=list)  # runtimes not installed, named
    choice: dict | None = None  # model → its fastest deployment, and why (bench/choose.py)
    rounds: int = 0
    stopped: str = ""  # why the rounds ended: intervals reached, the time cap, fixed rounds
    load: float = 0.0  # the 1-minute load average: the higher of the rounds' start and end
    others: float | None = None  # share of the CPUs other processes kept busy in the rounds
    raw_ms: list[list[list[float]]] = field(default_factory=list)  # candidate → round → runs

    def interval(self, i: int, j: int) -> tuple[float, float, float, bool]:
        """(ratio, low, high, noisy) of candidate j's median over candidate i's: how many
        times faster i is than j (> 1: i is faster)."""
        ratio, lo, hi = ratio_interval(self.raw_ms[j], self.raw_ms[i])
        noisy = half_width(ratio, lo, hi) > NOISY or contended(self.load, self.others)
        return ratio, lo, hi, noisy

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def __str__(self) -> str:
        head = (f"{'candidate':<28}{'runtime':>14}{'median ms':>11}{'p90 ms':>9}{'min ms':>8}"
                f"{'speedup (95% interval)':>29}"
                f"{'items/s':>10}{'size MB':>9}{'smaller':>9}{'RSS +MB':>9}")
        lines = [machine_line(self.threads),
                 f"batch {self.batch}, {self.threads} threads, {self.runs} timed runs each "
                 f"({self.rounds} rounds: {self.stopped})", head, "-" * len(head)]
        for r in self.rows:
            rt = r.runtime if r.precision == "f32" else f"{r.runtime}:{r.precision}"
            if r.error:
                lines.append(f"{r.name:<28}{rt:>14}  failed: {r.error}")
                continue
            size = "—" if r.size_mb is None else f"{r.size_mb:.2f}"
            ratio = "—" if r.size_ratio is None else f"{r.size_ratio:.1f}×"
            speed = (format_ratio(r.speedup, *r.ci, r.noisy) if r.ci
                     else f"{r.speedup:.2f}×")
            lines.append(f"{r.name:<28}{rt:>14}{r.median_ms:>11.3g}{r.p90_ms:>9.3g}"
                         f"{r.min_ms:>8.3g}{speed:>29}{r.throughput:>10.1f}{size:>9}"
                         f"{ratio:>9}{r.rss_delta_mb:>9.1f}")
        lines += [f"skipped: {s}" for s in self.skipped]
        lines += [f"fastest: {c['why']}" for c in (self.choice or {}).values()]
        return "\n".join(lines)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:  # resident pages now (ru_maxrss is only a peak)
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _size_mb(model) -> float | None:
    if isinstance(model, (str, Path)):
        p = Path(model)
        extra = p.with_suffix(".bin") if p.suffix == ".xml" else None  # an OpenVINO IR
        size = p.stat().st_size + (extra.stat().st_size if extra and extra.is_file() else 0)
        return size / 2**20
    with tempfile.TemporaryFile() as f:
        torch.save(model.state_dict(), f)
        return f.tell() / 2**20


def as_candidates(candidates: dict | list[Candidate]) -> list[Candidate]:
    """{name: nn.Module | .onnx path} or a list of Candidate → a list of Candidate."""
    if isinstance(candidates, dict):
        return [Candidate(k, v) for k, v in candidates.items()]
    return list(candidates)


def _open(c: Candidate, xs: tuple, threads: int, alone: bool, warmup: int):
    """(session, RSS added, error): the candidate loaded and warmed up until its times settle."""
    gc.collect()
    before = _rss_mb()
    try:
        s = session(c.model, c.runtime, threads, spin=alone, precision=c.precision,
                    config=c.config)
        warm(lambda: s.run(xs), warmup)
    except Exception as e:  # noqa: BLE001 — a runtime refusing one model: said, not fatal
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return None, 0.0, f"{type(e).__name__}: {first[:200]}"
    return s, _rss_mb() - before, None


def _round(sessions: list, xs: tuple, runs: int, rng: random.Random) -> list[list[float]]:
    """One round: every live session `runs` times back to back, in a random order."""
    return timed_round([(lambda s=s: s.run(xs)) if s is not None else None
                        for s in sessions], runs, rng)


def measure(candidates: dict | list[Candidate], example_inputs, *, rounds: int = 10,
            runs_per_round: int = 3, warmup: int = 3, threads: int = 2,
            skipped: list[str] | None = None, target: float | None = 0.05,
            cap_s: float = 20.0, min_s: float = 3.0) -> BenchResult:
    """Time the candidates in one process (the module docstring says how): at least `rounds`
    rounds, then more until every speedup's interval is within ±`target` (None: exactly
    `rounds`) or `cap_s` seconds have passed; ratios against the first candidate."""
    cands = as_candidates(candidates)
    torch.set_num_threads(threads)  # torch eager gets the runtimes' threads
    xs = as_args(example_inputs)
    opened = [_open(c, xs, threads, len(cands) == 1, warmup) for c in cands]
    sessions = [s for s, _, _ in opened]
    if sessions[0] is None:
        raise RuntimeError(f"the first candidate ({cands[0].name}), which every ratio is "
                           f"against, fails: {opened[0][2]}")
    load, raw, snap = os.getloadavg()[0], [[] for _ in cands], cpu_snapshot()
    rng, t0, n = random.Random(0), time.perf_counter(), 0
    while True:
        for i, times in enumerate(_round(sessions, xs, runs_per_round, rng)):
            raw[i].append(times)
        n += 1
        stop = _stop(raw, sessions, n, rounds, target, time.perf_counter() - t0,
                     min(min_s, cap_s), cap_s)
        if stop:
            break
    res = BenchResult(int(xs[0].shape[0]) if hasattr(xs[0], "shape") else 1, threads,
                      n * runs_per_round, machine=environment(threads),
                      skipped=list(skipped or []), rounds=n, stopped=stop,
                      load=max(load, os.getloadavg()[0]),
                      others=others_share(snap, cpu_snapshot()), raw_ms=raw)
    _rows(res, cands, sessions, opened, xs)
    return res


def _stop(raw, sessions, n: int, rounds: int, target: float | None, elapsed: float,
          min_s: float, cap_s: float) -> str:
    """Why the rounds end now ('' to go on)."""
    if n < rounds:
        return ""
    if target is None:
        return "fixed rounds"
    if elapsed < min_s:
        return ""
    widths = [half_width(*ratio_interval(raw[0], raw[i])) for i, s in enumerate(sessions)
              if i and s is not None]
    if all(w <= target for w in widths):
        return f"every interval within ±{target:.0%}"
    return f"time cap {cap_s:g} s" if elapsed >= cap_s else ""


def _rows(res: BenchResult, cands, sessions, opened, xs) -> None:
    sizes = [_size_mb(c.model) if s is not None else None
             for c, s in zip(cands, sessions, strict=True)]
    base_med = statistics.median(t for r in res.raw_ms[0] for t in r)
    fid = _fidelity(cands, sessions, xs)
    for i, (c, (s, rss, err)) in enumerate(zip(cands, opened, strict=True)):
        if s is None:
            res.rows.append(Row(c.name, c.runtime or "ort", float("nan"), float("nan"),
                                float("nan"), 0.0, float("nan"), 0.0, None, None,
                                c.precision, None, None, False, err))
            continue
        t = [x for r in res.raw_ms[i] for x in r]
        med = statistics.median(t)
        speed, lo, hi, noisy = res.interval(i, 0) if i else (1.0, 1.0, 1.0, False)
        res.rows.append(Row(c.name, s.name, med, float(np.percentile(t, 90)), min(t),
                            res.batch / med * 1e3, base_med / med, rss, sizes[i],
                            None if sizes[i] is None or sizes[0] is None
                            else sizes[0] / sizes[i], c.precision, fid[i], (lo, hi), noisy))


def _fidelity(cands: list[Candidate], sessions: list, xs: tuple) -> list[dict | None]:
    """Each candidate with a reference: its outputs against the reference's on the same
    inputs (mean cosine per sample; top-1 agreement for 2-D outputs with > 1 column)."""
    outs: dict[int, np.ndarray] = {}

    def out(i: int) -> np.ndarray:
        if i not in outs:
            outs[i] = np.asarray(sessions[i].run(xs), dtype=np.float64)
        return outs[i]
    return [None if c.reference is None or sessions[i] is None
            or sessions[c.reference] is None else agreement(out(c.reference), out(i))
            for i, c in enumerate(cands)]


def agreement(ref: np.ndarray, out: np.ndarray) -> dict:
    """Mean per-sample cosine of `out` vs `ref`, and top-1 agreement for (N, classes)."""
    r, o = ref.reshape(ref.shape[0], -1), out.reshape(out.shape[0], -1)
    cos = (r * o).sum(1) / (np.linalg.norm(r, axis=1) * np.linalg.norm(o, axis=1) + 1e-30)
    top1 = float((r.argmax(1) == o.argmax(1)).mean()) if ref.ndim == 2 and r.shape[1] > 1 \
        else None
    return {"cosine": float(cos.mean()), "top1": top1}


__all__ = ["BenchResult", "Candidate", "Row", "agreement", "as_candidates", "measure"]
