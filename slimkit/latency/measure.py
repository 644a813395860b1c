"""sk.benchmark: latency / throughput / memory / size of several candidates, in one process.

Timing follows the project's rule for a drifting machine: warm-up, then `rounds` rounds in
which every candidate runs `runs_per_round` times back to back, candidates interleaved in a
fresh (seeded) random order each round, so drift — and whatever a neighbour leaves running —
hits all alike; medians, p90 and min over all timed runs; ratios against the first.
Each block starts with one untimed call, and ONNX Runtime sessions are built without
spin-waiting when several candidates share the machine: an idle pool that spins steals the
two cores from whichever candidate runs next (measured here: int8 medians 2× too slow).
Scripts should also set OMP_WAIT_POLICY=PASSIVE before importing torch, for the same reason.
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
    precision: str = "f32"
    fidelity: dict | None = None  # vs the candidate's reference: cosine, top1 agreement


@dataclass
class BenchResult:
    batch: int
    threads: int
    runs: int
    rows: list[Row] = field(default_factory=list)
    machine: dict = field(default_factory=dict)  # bench.machine.environment(): CPU, versions
    skipped: list[str] = field(default_factory=list)  # runtimes not installed, named
    choice: dict | None = None  # model → its fastest deployment, and why (bench/choose.py)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def __str__(self) -> str:
        head = (f"{'candidate':<28}{'runtime':>14}{'median ms':>11}{'p90 ms':>9}{'min ms':>8}"
                f"{'speedup':>9}"
                f"{'items/s':>10}{'size MB':>9}{'smaller':>9}{'RSS +MB':>9}")
        lines = [machine_line(self.threads),
                 f"batch {self.batch}, {self.threads} threads, {self.runs} timed runs each", head,
                 "-" * len(head)]
        for r in self.rows:
            size = "—" if r.size_mb is None else f"{r.size_mb:.2f}"
            ratio = "—" if r.size_ratio is None else f"{r.size_ratio:.1f}×"
            rt = r.runtime if r.precision == "f32" else f"{r.runtime}:{r.precision}"
            lines.append(f"{r.name:<28}{rt:>14}{r.median_ms:>11.2f}{r.p90_ms:>9.2f}"
                         f"{r.min_ms:>8.2f}"
                         f"{r.speedup:>8.2f}×{r.throughput:>10.1f}{size:>9}{ratio:>9}"
                         f"{r.rss_delta_mb:>9.1f}")
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


def measure(candidates: dict | list[Candidate], example_inputs, *, rounds: int = 10,
            runs_per_round: int = 3, warmup: int = 3, threads: int = 2,
            skipped: list[str] | None = None) -> BenchResult:
    """Time the candidates in one process: warm-up, then `rounds` rounds in a seeded-random
    order, `runs_per_round` timed runs each; medians, p90, min, throughput, RSS, size, ratios
    against the first, and each variant's output agreement with its reference."""
    cands = as_candidates(candidates)
    torch.set_num_threads(threads)
    xs = as_args(example_inputs)
    sessions, rss = [], []
    for c in cands:
        gc.collect()
        before = _rss_mb()
        s = session(c.model, c.runtime, threads, spin=len(cands) == 1, precision=c.precision,
                    config=c.config)
        for _ in range(warmup):
            s.run(xs)
        sessions.append(s)
        rss.append(_rss_mb() - before)
    times: list[list[float]] = [[] for _ in cands]
    rng = random.Random(0)
    for _ in range(rounds):
        for i in rng.sample(range(len(sessions)), len(sessions)):
            s = sessions[i]
            s.run(xs)  # re-warm after the switch; not timed
            for _ in range(runs_per_round):
                t = time.perf_counter()
                s.run(xs)
                times[i].append(time.perf_counter() - t)
    batch = int(xs[0].shape[0]) if hasattr(xs[0], "shape") else 1
    res = BenchResult(batch, threads, rounds * runs_per_round, machine=environment(threads),
                      skipped=list(skipped or []))
    sizes = [_size_mb(c.model) for c in cands]  # a module is serialised once to measure it
    base_med, base_size = statistics.median(times[0]), sizes[0]
    fid = _fidelity(cands, sessions, xs)
    for c, s, t, r, size, f in zip(cands, sessions, times, rss, sizes, fid, strict=True):
        med = statistics.median(t)
        res.rows.append(Row(c.name, s.name, med * 1e3, float(np.percentile(t, 90)) * 1e3,
                            min(t) * 1e3, batch / med, base_med / med, r, size,
                            None if size is None or base_size is None else base_size / size,
                            c.precision, f))
    return res


def _fidelity(cands: list[Candidate], sessions: list, xs: tuple) -> list[dict | None]:
    """Each candidate with a reference: its outputs against the reference's on the same
    inputs (mean cosine per sample; top-1 agreement for 2-D outputs with > 1 column)."""
    outs: dict[int, np.ndarray] = {}

    def out(i: int) -> np.ndarray:
        if i not in outs:
            outs[i] = np.asarray(sessions[i].run(xs), dtype=np.float64)
        return outs[i]
    return [None if c.reference is None else agreement(out(c.reference), out(i))
            for i, c in enumerate(cands)]


def agreement(ref: np.ndarray, out: np.ndarray) -> dict:
    """Mean per-sample cosine of `out` vs `ref`, and top-1 agreement for (N, classes)."""
    r, o = ref.reshape(ref.shape[0], -1), out.reshape(out.shape[0], -1)
    cos = (r * o).sum(1) / (np.linalg.norm(r, axis=1) * np.linalg.norm(o, axis=1) + 1e-30)
    top1 = float((r.argmax(1) == o.argmax(1)).mean()) if ref.ndim == 2 and r.shape[1] > 1 \
        else None
    return {"cosine": float(cos.mean()), "top1": top1}
