"""What every stage works with: the data, the metric, the original model, the budget, its own
directory — and the measurements (one Attempt per model a stage tries)."""

from __future__ import annotations

import logging
import statistics
import time
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slimkit.graph.modules import state_bytes
from slimkit.pipeline.recipe import Recipe
from slimkit.pipeline.sources import Data, Metric
from slimkit.quant.modules import QuantLayer

log = logging.getLogger("slimkit.pipeline")


class RuntimeModule(nn.Module):
    """A runtime session as a module, so the recipe's metric can measure it."""

    def __init__(self, sess) -> None:
        super().__init__()
        self.sess = sess

    def forward(self, *args, **kwargs) -> torch.Tensor:
        xs = tuple(a.numpy() for a in (*args, *kwargs.values()))
        return torch.from_numpy(np.asarray(self.sess.run(xs)))


def structure_key(model: nn.Module) -> tuple:
    """What MACs and latency depend on — module types and tensor shapes, not the values: a
    distilled student has its input's, so neither is measured twice."""
    return (tuple((n, type(m).__name__) for n, m in model.named_modules()),
            tuple((n, tuple(t.shape), t.dtype) for n, t in model.state_dict().items()))


@dataclass
class Attempt:
    """One model a stage tried, measured."""

    label: str
    metric: float
    drop: float  # vs the stage's input model, in the metric's units (positive: worse)
    total_drop: float  # vs the original model
    fits: bool  # within the stage's and the overall budget
    params: int
    macs: int | None
    state_bytes: int
    latency_ms: float | None  # a quick probe on the model's deploy runtime (report plot)
    seconds: float
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StageResult:
    model: nn.Module
    attempts: list[Attempt] = field(default_factory=list)
    kept: str = ""  # which attempt's model went on, and why
    skipped: bool = False  # nothing fitted: the input model went on unchanged
    info: dict = field(default_factory=dict)  # stage-specific details for the report
    chosen: Attempt | None = None  # the attempt whose model went on


class Context:
    def __init__(self, recipe: Recipe, data: Data, metric: Metric, unit: str,
                 original: nn.Module, baseline: float, progress: bool | None) -> None:
        self.recipe, self.data, self.metric, self.unit = recipe, data, metric, unit
        self.original, self.baseline, self.progress = original, baseline, progress
        self.index, self.dir, self.run_dir = 0, Path("."), Path(".")
        self.input_metric = baseline
        self._input_macs: int | None = None
        self._input_model: nn.Module | None = None  # MACs counted when first asked
        self.kept: list[tuple[str, nn.Module]] = [("original", original)]  # benchmark stage
        self.workers = 1  # search stages: worker processes on one storage
        self.notes: list[str] = []  # what a stage's methods reported (into its result)
        self._macs: dict[tuple, int | None] = {}  # structure_key → MACs
        self._probes: dict[tuple, float | None] = {}  # structure_key → probe ms
        self._onnx: dict[int, tuple] = {}  # id(model) → (weakref, fingerprint, opset, bytes)

    # ---- budget -----------------------------------------------------------------------------
    def stage_budget(self, cfg) -> float:
        own = getattr(cfg, "budget", None)
        if own is not None:
            return own
        b = self.recipe.budget
        return b.per_stage if b.per_stage is not None else b.max_drop

    def fits(self, value: float, cfg) -> bool:
        eps = 1e-9
        return (self.input_metric - value <= self.stage_budget(cfg) + eps
                and self.baseline - value <= self.recipe.budget.max_drop + eps)

    # ---- measuring --------------------------------------------------------------------------
    @property
    def input_macs(self) -> int | None:
        """MACs of the model the current stage starts from."""
        if self._input_macs is None and self._input_model is not None:
            model, self._input_model = self._input_model, None  # (a quantized source asks)
            self._input_macs = self.macs(model)
        return self._input_macs

    @input_macs.setter
    def input_macs(self, macs: int | None) -> None:
        self._input_macs, self._input_model = macs, None

    def count_input_macs(self, model: nn.Module) -> None:
        """The source's MACs, counted when first asked: a pruning stage counts them anyway
        (known_macs), so the run usually builds no graph for them."""
        self._input_macs, self._input_model = None, model

    def measure(self, model: nn.Module, label: str, cfg, t0: float, note: str = "") -> Attempt:
        value = self.metric(model)
        a = Attempt(label, value, self.input_metric - value, self.baseline - value,
                    self.fits(value, cfg), count_params(model), self.macs(model),
                    state_bytes(model), self.latency_probe(model), time.perf_counter() - t0,
                    note)
        log.info("stage %d %s: %s %.4g (drop %.3g, %s)", self.index, label, self.unit,
                 value, a.drop, "fits" if a.fits else "over budget")
        return a

    def macs(self, model: nn.Module) -> int | None:
        """MACs from the dependency graph of a float model; a quantized one (or a runtime
        session) keeps its input's: quantization changes the bits, not the multiply count."""
        if isinstance(model, RuntimeModule) or any(isinstance(m, QuantLayer)
                                                   for m in model.modules()):
            return self.input_macs
        key = structure_key(model)
        if key not in self._macs:
            self._macs[key] = self._graph_macs(model)
        return self._macs[key]

    def known_macs(self, model: nn.Module, macs: int | None) -> None:
        """MACs a step already counted (the pruner's report): no graph built for them again."""
        if macs:
            self._macs[structure_key(model)] = macs

    def _graph_macs(self, model: nn.Module) -> int | None:
        from slimkit.graph.deps import DependencyError, DependencyGraph

        try:
            return DependencyGraph.build(model, example_args(self.data.example, 1),
                                         "freeze").macs()
        except (DependencyError, Exception):  # noqa: BLE001 — MACs are informative only
            return None

    def onnx(self, model: nn.Module, path: Path, opset: int | None = None) -> Path:
        """`model` exported to `path` (dynamic batch) — once per model in a run: the latency
        probe, the export stage and the final artifact share one export (≈ 1 s each)."""
        from slimkit.deploy import export
        from slimkit.deploy.onnx_export import DEFAULT_OPSET
        from slimkit.io.atomic import write_atomic

        opset = opset or DEFAULT_OPSET
        fp = _fingerprint(model)
        hit = self._onnx.get(id(model))
        if hit is not None and hit[0]() is model and hit[1:3] == (fp, opset):
            return write_atomic(path, hit[3])
        export(model, example_args(self.data.example), path, opset=opset)
        self._onnx[id(model)] = (weakref.ref(model), fp, opset, Path(path).read_bytes())
        return Path(path)

    @torch.no_grad()
    def latency_probe(self, model: nn.Module, runs: int = 20) -> float | None:
        """Median ms of the model in ONNX Runtime (fp32, or int8 where quantized) at the
        data's batch size — quick, one runtime for every attempt, for the report's
        metric-vs-latency plot (the benchmark stage measures kept models properly). A
        runtime session is timed as it is; a structure probed before is not probed again."""
        import tempfile

        from slimkit.deploy import session

        xs = tuple(t.numpy() for t in example_args(self.data.example))
        if isinstance(model, RuntimeModule):
            return _median_ms(model.sess, xs, runs)
        key = structure_key(model)
        if key in self._probes:
            return self._probes[key]
        try:
            with tempfile.TemporaryDirectory() as d:
                sess = session(self.onnx(model, Path(d) / "probe.onnx"),
                               threads=self.recipe.threads)
                ms = _median_ms(sess, xs, runs)
        except Exception:  # noqa: BLE001 — a model that does not export has no probe
            ms = None
        self._probes[key] = ms
        return ms

    # ---- training ---------------------------------------------------------------------------
    def train(self, model: nn.Module, spec, tag: str, loss_fn=None, extra=()) -> nn.Module:
        """Fine-tune `model` in place with the Trainer, checkpointing into the stage directory
        so a killed run resumes bit-identically (same seed, same data order)."""
        from slimkit.train import TrainConfig, Trainer

        cfg = TrainConfig(epochs=spec.epochs, lr=spec.lr, batch_size=spec.batch_size,
                          seed=self.recipe.seed + self.index, checkpoint_dir=self.dir / tag,
                          checkpoint_seconds=5, progress=self.progress is not False,
                          optimizer=getattr(spec, "optimizer", "adamw"),
                          schedule=getattr(spec, "schedule", "onecycle"))
        kw = {} if loss_fn is None else {"loss_fn": loss_fn}
        with Trainer(model, cfg, self.data.train, extra_parameters=list(extra), **kw) as t:
            t.fit(resume=True)
        return model.eval()


@torch.no_grad()
def _fingerprint(model: nn.Module) -> tuple:
    """Changes when the weights do (a model trained in place after it was exported)."""
    return tuple(float(t.double().sum()) if t.is_floating_point() else int(t.sum())
                 for t in model.state_dict().values())


def _median_ms(sess, xs: tuple, runs: int) -> float:
    for _ in range(3):
        sess.run(xs)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(xs)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def count_params(model: nn.Module) -> int:
    """Weights a model holds, quantized ones counted as the elements they encode."""
    n = sum(p.numel() for p in model.parameters())
    for m in model.modules():
        if isinstance(m, QuantLayer) and m.packed is not None:
            n += m.packed.shape.numel()
    return n


def example_args(x, n: int | None = None) -> tuple:
    """A batch as positional arguments (a dict in its key order), its first n rows."""
    cut = (lambda t: t[:n]) if n else (lambda t: t)
    return tuple(cut(v) for v in x.values()) if isinstance(x, dict) else (cut(x),)
