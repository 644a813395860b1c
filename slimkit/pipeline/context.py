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

from slimkit.atomic import write_atomic
from slimkit.batch import as_args, take
from slimkit.deploy import export, session
from slimkit.deploy.onnx_export import DEFAULT_OPSET
from slimkit.distill import Distiller
from slimkit.graph.deps import DependencyError, DependencyGraph
from slimkit.graph.modules import state_bytes
from slimkit.pipeline.recipe import Recipe, RecipeError
from slimkit.pipeline.sources import Data, RunMetric
from slimkit.progress import note
from slimkit.quant.modules import QuantLayer
from slimkit.task import Task
from slimkit.train import TrainConfig, Trainer
from slimkit.train.guard import describe_loss

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
    fits_overall: bool  # within the overall budget (the per-stage limit aside)
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
    def __init__(self, recipe: Recipe, data: Data, task: Task, metric: RunMetric,
                 original: nn.Module, baseline: float, progress: bool | None) -> None:
        self.recipe, self.data, self.task, self.metric = recipe, data, task, metric
        self.unit = metric.unit
        self.original, self.baseline, self.progress = original, baseline, progress
        self.index, self.dir, self.run_dir = 0, Path("."), Path(".")
        self.input_metric = baseline
        # the guard: what a stage's loss is measured from, and what it may lose (the runner
        # sets both per stage; a deferred chain is judged from where it started)
        self.reference, self.chain_budget = baseline, None
        self.deferred = False  # this stage's loss is judged at the end of its chain
        self._input_macs: int | None = None
        self._input_model: nn.Module | None = None  # MACs counted when first asked
        self.kept: list[tuple[str, nn.Module]] = [("original", original)]  # benchmark stage
        self.workers = 1  # search stages: worker processes on one storage
        self.notes: list[str] = []  # what a stage's methods reported (into its result)
        self.training: list[dict] = []  # each training run of the stage: its loss, first steps
        self._macs: dict[tuple, int | None] = {}  # structure_key → MACs
        self._probes: dict[tuple, float | None] = {}  # structure_key → probe ms
        self._onnx: dict[int, tuple] = {}  # id(model) → (weakref, fingerprint, opset, bytes)

    # ---- budget -----------------------------------------------------------------------------
    def stage_budget(self, cfg) -> float:
        """What this stage may lose (a chain's end: what the whole chain may lose)."""
        if self.chain_budget is not None:
            return self.chain_budget
        return own_budget(self.recipe, cfg)

    def begin_stage(self) -> None:
        """Per-stage losses are measured from the worse of the original's metric and the
        previous stage's: a stage that improved does not make the next one look lossy."""
        self.reference = self.metric.worse(self.baseline, self.input_metric)

    def fits_overall(self, value: float) -> bool:
        return self.metric.drop(self.baseline, value) <= self.recipe.budget.max_drop + 1e-9

    def fits(self, value: float, cfg) -> bool:
        if self.deferred:
            return True  # judged where the chain ends
        return (self.metric.drop(self.reference, value) <= self.stage_budget(cfg) + 1e-9
                and self.fits_overall(value))

    def over(self, a: Attempt, cfg) -> str:
        """Why an attempt is over budget, in numbers."""
        d = self.metric.drop(self.reference, a.metric)
        return (f"{a.label} is over budget ({self.unit} {a.metric:.4g}: {d:+.3g} from "
                f"{self.reference:.4g}, at most {self.stage_budget(cfg):g} per stage; "
                f"{a.total_drop:+.3g} of {self.recipe.budget.max_drop:g} overall)")

    def say(self, message: str) -> None:
        """A loud note: logged, printed, and kept in the stage's result for the report."""
        log.info("stage %d: %s", self.index, message)
        note(f"stage {self.index}: {message}")
        self.notes.append(message)

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
        drop = self.metric.drop
        a = Attempt(label, value, drop(self.input_metric, value), drop(self.baseline, value),
                    self.fits(value, cfg), self.fits_overall(value), count_params(model),
                    self.macs(model), state_bytes(model), self.latency_probe(model),
                    time.perf_counter() - t0, note)
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
        try:
            return DependencyGraph.build(model, example_args(self.data.example, 1),
                                         "freeze").macs()
        except (DependencyError, Exception):  # noqa: BLE001 — MACs are informative only
            return None

    def onnx(self, model: nn.Module, path: Path, opset: int | None = None) -> Path:
        """`model` exported to `path` (dynamic batch) — once per model in a run: the latency
        probe, the export stage and the final artifact share one export (≈ 1 s each)."""
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
        cfg = TrainConfig(epochs=spec.epochs, lr=spec.lr, batch_size=spec.batch_size,
                          seed=self.recipe.seed + self.index, checkpoint_dir=self.dir / tag,
                          checkpoint_seconds=5, progress=self.progress is not False,
                          optimizer=getattr(spec, "optimizer", "adamw"),
                          schedule=getattr(spec, "schedule", "onecycle"))
        with Trainer(model, cfg, self.data.train, loss_fn=loss_fn, extra_parameters=list(extra),
                     task=self.task) as t:
            history = t.fit(resume=True)
            losses = [h["loss"] for h in history if "loss" in h]
            self.training.append({"run": tag, "loss": describe_loss(t.loss_fn),
                                  "first_losses": losses[:5], "last_loss": losses[-1:]})
        return model.eval()

    def recovery_loss(self, kd: bool, temperature: float = 4.0, alpha: float = 0.9):
        """The loss a stage trains with: the task's own (None: the Trainer builds it), or
        distillation from the original — asked for, or the only signal (unlabelled data)."""
        if kd or not self.task.labeled or not self.data.labeled:
            return Distiller(self.original, temperature, alpha if self.data.labeled else 1.0,
                             task=self.task)
        return None


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


@torch.no_grad()
def unchanged(ctx: Context, before: nn.Module, after: nn.Module, what: str) -> None:
    """A stage asked to change the model's weights that changed none is an error, not a
    result: the report would show it as done."""
    a, b = before.state_dict(), after.state_dict()
    if a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k])
                                    for k in a):
        raise RecipeError(f"stages[{ctx.index}].{what}: training changed no weight of the "
                          "model — nothing was learnt (a frozen model, or a learning rate "
                          "of 0?)")


def count_params(model: nn.Module) -> int:
    """Weights a model holds, quantized ones counted as the elements they encode."""
    n = sum(p.numel() for p in model.parameters())
    for m in model.modules():
        if isinstance(m, QuantLayer) and m.packed is not None:
            n += m.packed.shape.numel()
    return n


def example_args(x, n: int | None = None) -> tuple:
    """A batch's inputs as positional arguments (a dict in its key order), first n rows."""
    return as_args(take(x, n))


def own_budget(recipe: Recipe, cfg) -> float:
    """A stage's own per-stage budget: its `budget`, the recipe's per_stage, or max_drop."""
    own = getattr(cfg, "budget", None)
    if own is not None:
        return own
    b = recipe.budget
    return b.per_stage if b.per_stage is not None else b.max_drop
