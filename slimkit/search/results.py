"""What a search hands back: every trial as a record, the best / Pareto candidates retrained,
exported and benchmarked, and the plot data (search curve, Pareto points) as plain lists."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState
from torch import nn

from slimkit.bench import Candidate as BenchCandidate
from slimkit.bench import benchmark
from slimkit.deploy import export
from slimkit.search.config import SearchConfig
from slimkit.search.evaluators import SearchData, accuracy, candidate_seed, recalibrate_bn
from slimkit.search.objectives import hypervolume, pareto_front
from slimkit.search.space import Space, model_costs
from slimkit.train import TrainConfig, Trainer


@dataclass
class TrialRecord:
    number: int
    state: str  # complete | rejected | failed | lost | surplus | running
    encoding: list[int] | None
    arch: dict | None
    values: list[float] | None  # objective values, in config.objectives order
    metrics: dict = field(default_factory=dict)
    costs: dict = field(default_factory=dict)
    error: str | None = None
    seconds: float | None = None


def _state(t) -> str:
    if t.state == TrialState.COMPLETE:
        return "complete"
    if t.state == TrialState.RUNNING:
        return "running"
    for key in ("rejected", "error", "surplus"):
        if key in t.user_attrs:
            return {"error": "failed"}.get(key, key)
    return "lost"


def records(study: optuna.Study, space: Space) -> list[TrialRecord]:
    out = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        enc = t.user_attrs.get("encoding")
        a = t.user_attrs
        out.append(TrialRecord(t.number, _state(t), enc, space.decode(enc) if enc else None,
                               list(t.values) if t.values is not None else None,
                               a.get("metrics", {}), a.get("costs", {}),
                               a.get("error") or a.get("rejected"), a.get("seconds")))
    return out


@dataclass
class Candidate:
    """A chosen architecture, retrained and measured. `model` is a plain nn.Module."""

    rank: int
    trial: int
    arch: dict
    encoding: list[int]
    search_values: list[float]
    test_accuracy: float
    params: int
    macs: int
    predicted_latency_ms: float | None
    measured_latency_ms: float | None  # ONNX Runtime end-to-end, at the latency batch
    onnx_path: str | None
    model: nn.Module = field(repr=False, compare=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "model"}


@dataclass
class SearchResult:
    objectives: list[str]
    directions: list[str]
    constraints: list[tuple[str, float]]
    space: dict
    trials: list[TrialRecord]
    seconds: float
    candidates: list[Candidate] = field(default_factory=list)
    bench: str | None = None  # the benchmark table of the candidates, as printed
    latency: str | None = None  # how latency was predicted (the table's calibration), one line

    @property
    def completed(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == "complete"]

    def best(self) -> TrialRecord | None:
        """Best completed trial on the first objective (the metric)."""
        done = self.completed
        if not done:
            return None
        sign = 1 if self.directions[0] == "maximize" else -1
        return max(done, key=lambda t: sign * t.values[0])

    def pareto(self) -> list[TrialRecord]:
        """Completed trials on the Pareto front of the objectives (with one objective: the
        front of (metric, every constrained cost))."""
        done = self.completed
        pts, dirs = self._points(done)
        return [done[i] for i in pareto_front(pts, dirs)]

    def _points(self, trials) -> tuple[list[list[float]], list[str]]:
        if len(self.objectives) > 1:
            return [list(t.values) for t in trials], list(self.directions)
        costs = [c for c, _ in self.constraints]
        return ([[t.values[0], *(t.costs[c] for c in costs)] for t in trials],
                [self.directions[0], *("minimize" for _ in costs)])

    def hypervolume(self, reference: list[float] | None = None) -> float:
        """Hypervolume of the completed trials (axes as in _points). Default reference: the
        metric at 0 and each cost at its constraint (or 1.1× the largest seen)."""
        done = self.completed
        pts, dirs = self._points(done)
        if not pts:
            return 0.0
        if reference is None:
            limits = dict(self.constraints)
            names = self.objectives if len(self.objectives) > 1 else [
                self.objectives[0], *limits]
            reference = [0.0 if d == "maximize" else limits.get(n, 1.1 * max(p[i] for p in pts))
                         for i, (n, d) in enumerate(zip(names, dirs, strict=True))]
        return hypervolume(pts, dirs, reference)

    def search_curve(self) -> list[tuple[int, float]]:
        """(trial number, best first-objective value so far) after each completed trial."""
        out, best = [], None
        sign = 1 if self.directions[0] == "maximize" else -1
        for t in self.completed:
            v = t.values[0]
            best = v if best is None or sign * v > sign * best else best
            out.append((t.number, best))
        return out

    def pareto_points(self) -> dict:
        """{'axes': names, 'all': points of completed trials, 'front': points on the front}."""
        done = self.completed
        pts, _ = self._points(done)
        names = self.objectives if len(self.objectives) > 1 else [
            self.objectives[0], *(c for c, _ in self.constraints)]
        front = {t.number for t in self.pareto()}
        return {"axes": list(names), "all": pts,
                "front": [p for p, t in zip(pts, done, strict=True) if t.number in front]}

    def to_dict(self) -> dict:
        return {"objectives": self.objectives, "directions": self.directions,
                "constraints": [list(c) for c in self.constraints], "space": self.space,
                "seconds": self.seconds, "trials": [asdict(t) for t in self.trials],
                "candidates": [c.to_dict() for c in self.candidates], "bench": self.bench,
                "latency": self.latency,
                "hypervolume": self.hypervolume(), "search_curve": self.search_curve(),
                "pareto": self.pareto_points()}


def collect(config: SearchConfig, space: Space, study: optuna.Study,
            seconds: float) -> SearchResult:
    return SearchResult(list(config.objectives), config.directions,
                        [(c.cost, c.max) for c in config.constraints], space.to_dict(),
                        records(study, space), seconds)


def _chosen(result: SearchResult, k: int) -> list[TrialRecord]:
    pool = result.pareto() if len(result.objectives) > 1 else result.completed
    sign = 1 if result.directions[0] == "maximize" else -1
    return sorted(pool, key=lambda t: -sign * t.values[0])[:k]


def retrain(config: SearchConfig, space: Space, data: SearchData, enc) -> nn.Module:
    """From scratch (architecture spaces) or from the pruned weights (pruning spaces), on the
    full training split with config.retrain."""
    s = candidate_seed(config.seed, enc)
    torch.manual_seed(s)
    model = space.build_model(enc)
    rc = config.retrain
    if rc.epochs == 0:
        recalibrate_bn(model, data.full_train, batches=8, seed=s)
        return model.eval()
    cfg = TrainConfig(epochs=rc.epochs, batch_size=rc.batch_size, lr=rc.lr, seed=s % 2**31,
                      progress=False, log_every=0)
    with Trainer(model, cfg, data.full_train) as t:
        t.fit()
    return model.eval()


def finish(result: SearchResult, config: SearchConfig, space: Space, data: SearchData,
           table) -> SearchResult:
    """Retrain, export (ONNX, in run_dir when there is one) and benchmark the top_k."""
    chosen = _chosen(result, config.top_k)
    if not chosen:
        return result
    out_dir = config.run_dir
    tmp = tempfile.TemporaryDirectory() if out_dir is None else None
    where = Path(tmp.name) if tmp else out_dir
    x = space.example(config.latency.batch)
    try:
        models, paths = [], []
        for rank, t in enumerate(chosen):
            m = retrain(config, space, data, t.encoding)
            models.append(m)
            paths.append(export(m, x, where / f"candidate-{rank}-trial-{t.number}.onnx"))
        bench = benchmark([BenchCandidate(f"#{r} trial {t.number}", str(p), "ort")
                           for r, (t, p) in enumerate(zip(chosen, paths, strict=True))], x,
                          threads=config.latency.threads)
        for rank, (t, m, p, row) in enumerate(zip(chosen, models, paths, bench.rows,
                                                  strict=True)):
            c = model_costs(m, space.example(), table)
            result.candidates.append(Candidate(
                rank, t.number, t.arch, t.encoding, t.values, accuracy(m, data.test), c.params,
                c.macs, c.latency_ms, row.median_ms, None if tmp else str(p), m))
        result.bench = str(bench)
    finally:
        if tmp:
            tmp.cleanup()
    return result
