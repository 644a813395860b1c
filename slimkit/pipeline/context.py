"""What a stage works with. The run's state is fixed for the whole run (`Run`: the recipe,
data, task, metric, original model and its baseline, built and measured once); the budget is
the guard's (guard.py); measurements are cached (measurements.py); what belongs to the stage
running now (its index, directory, input, notes) changes only through `begin` / `advance`."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from slimkit.distill import Distiller
from slimkit.graph.modules import state_bytes
from slimkit.pipeline.guard import Guard
from slimkit.pipeline.measurements import Measurements
from slimkit.pipeline.recipe import Recipe, RecipeError
from slimkit.pipeline.sources import Data, RunMetric
from slimkit.progress import note
from slimkit.quant.modules import QuantLayer
from slimkit.task import Task
from slimkit.train import TrainConfig, service
from slimkit.train.config import Schedule
from slimkit.train.guard import describe_loss

log = logging.getLogger("slimkit.pipeline")


@dataclass(frozen=True)
class Run:
    """Everything fixed for a run, built once from the recipe."""

    recipe: Recipe
    stages: list  # [(stage type, typed config)]
    data: Data
    task: Task
    metric: RunMetric
    original: nn.Module
    baseline: float  # the original's metric
    progress: bool | None = None
    workers: int = 1  # search stages: worker processes on one storage
    storage: str | None = None  # search stages: the storage URL (other hosts share it)
    force: bool = False  # search stages: replace a study another recipe left in the storage
    run_dir: Path = Path(".")


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
    def __init__(self, run: Run) -> None:
        self.run = run
        self.guard = Guard(run.metric, run.baseline, run.recipe.budget, run.baseline)
        self.cache = Measurements(run.data.example, run.recipe.threads)
        self.cache.set_input(model=run.original)
        self.index, self.dir = 0, run.run_dir
        self.input_metric = run.baseline  # the metric of the model the stage starts from
        self.kept: list[tuple[str, nn.Module]] = [("original", run.original)]  # benchmark
        self.notes: list[str] = []  # what a stage's methods reported (into its result)
        self.training: list[dict] = []  # each training run of the stage: its loss, first steps

    # the run's fixed state, read where stages read it
    recipe = property(lambda self: self.run.recipe)
    data = property(lambda self: self.run.data)
    task = property(lambda self: self.run.task)
    metric = property(lambda self: self.run.metric)
    original = property(lambda self: self.run.original)
    baseline = property(lambda self: self.run.baseline)
    unit = property(lambda self: self.run.metric.unit)

    # ---- the stage running now --------------------------------------------------------------
    def begin(self, index: int, directory: Path) -> None:
        """Stage `index` starts in `directory` from the current input."""
        self.index, self.dir, self.notes, self.training = index, directory, [], []
        if self.guard.chain_budget is None:  # a chain's end is judged from the chain's start
            self.guard.begin(self.input_metric)

    def advance(self, label: str, done: dict, model: nn.Module, changed: bool) -> None:
        """What the next stage starts from: this stage's metric and MACs (and its model, for
        the benchmark stage, when it changed one)."""
        self.input_metric = done["metric"]
        self.cache.set_input(macs=done["macs"])
        if changed:
            self.kept.append((label, model))

    def measure(self, model: nn.Module, label: str, cfg, t0: float, note: str = "",
                of: nn.Module | None = None) -> Attempt:
        """The metric of `model`; params, MACs, bytes and the latency probe of `of` where
        given (a runtime's session measures the metric of the model it was exported from)."""
        value = self.metric(model)
        drop, sized = self.metric.drop, model if of is None else of
        a = Attempt(label, value, drop(self.input_metric, value), drop(self.baseline, value),
                    self.guard.fits(value, cfg), self.guard.fits_overall(value),
                    count_params(sized), self.cache.macs(sized), state_bytes(sized),
                    self.cache.latency_probe(sized), time.perf_counter() - t0, note)
        log.info("stage %d %s: %s %.4g (drop %.3g, %s)", self.index, label, self.unit,
                 value, a.drop, "fits" if a.fits else "over budget")
        return a

    def doubling(self, what: str, epochs: int, max_epochs: int, fallback: bool, cfg,
                 attempt) -> list[tuple[Attempt, object]]:
        """Train and measure with `epochs`, then — over budget, with the fallback on — again
        with twice the epochs up to `max_epochs`, saying each time what comes and how long it
        should take. attempt(epochs) → (Attempt, what to keep with it); all are returned."""
        tried = []
        while True:
            a, kept = attempt(epochs)
            tried.append((a, kept))
            if a.fits or not fallback or epochs * 2 > max_epochs:
                return tried
            self.say(f"{what}: {self.over(a, cfg)}; training again with {epochs * 2} epochs, "
                     f"about {2 * a.seconds:.0f} s")
            epochs *= 2

    def over(self, a: Attempt, cfg) -> str:
        return self.guard.over(a.label, a.metric, cfg)

    def say(self, message: str) -> None:
        """A loud note: logged, printed, and kept in the stage's result for the report."""
        log.info("stage %d: %s", self.index, message)
        note(f"stage {self.index}: {message}")
        self.notes.append(message)

    # ---- training -------------------------------------------------------------------------
    def train(self, model: nn.Module, spec: Schedule, tag: str, loss_fn=None,
              extra=()) -> nn.Module:
        """Fine-tune `model` in place with the Trainer, checkpointing into the stage directory
        so a killed run resumes bit-identically (same seed, same data order)."""
        cfg = TrainConfig(**spec.model_dump(include=set(Schedule.model_fields)),
                          seed=self.recipe.seed + self.index, checkpoint_dir=self.dir / tag,
                          checkpoint_seconds=5, progress=self.run.progress is not False)
        # under torchrun (slimkit compress launched by it): on every rank, rank 0's model
        t = service.train(model, cfg, self.data.train, loss_fn=loss_fn,
                          extra_parameters=list(extra), task=self.task)
        losses = [h["loss"] for h in t.history if "loss" in h]
        self.training.append({"run": tag, "loss": describe_loss(t.loss_fn), "ranks": t.world,
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


__all__ = ["Attempt", "Context", "Run", "StageResult", "count_params", "unchanged"]
