"""The `prune` stage: structured or unstructured pruning + fine-tuning, under the budget.

Fallback: when the configured amount costs more than the budget allows, bisect the fraction of
it (the largest that fits is kept), each candidate pruned from the stage's input and
fine-tuned the same way; nothing fits → the stage is skipped and the input goes on.

Unlabelled data (text for an encoder): importances measured on data (taylor, mask) use the
change of the model's own outputs (1 − cosine to the stage input's outputs) as the loss, and
fine-tuning distils from the original model (MSE on its outputs) — there is no label to fit.
"""

from __future__ import annotations

import time
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from slimkit.batch import call_model
from slimkit.graph.deps import DependencyError
from slimkit.pipeline.context import Attempt, Context, StageResult
from slimkit.pipeline.measurements import example_args
from slimkit.pipeline.recipe import RecipeError
from slimkit.pipeline.registry import planner, stage
from slimkit.pruning import PruneConfig, PruneError, prune
from slimkit.pruning.rounding import LatencyRounding
from slimkit.record import record_of
from slimkit.train.config import Schedule


class Finetune(Schedule):
    """Training after each cut, from the cut model: a Schedule, plus distillation."""

    epochs: int = Field(3, ge=0)
    """Epochs of fine-tuning after each cut (0: none)."""
    kd: bool = False
    """Distil from the original while recovering (the task's distillation loss, mixed with
    the targets' loss by 1 − alpha); unlabelled data always distils."""
    temperature: float = Field(4.0, gt=0)
    """Softmax temperature of the distillation (classification tasks)."""
    alpha: float = Field(0.9, ge=0, le=1)
    """Weight of the teacher's term; 1 − alpha weighs the targets' loss."""


class PruneStage(PruneConfig):
    """Every PruneConfig field, plus what the pipeline does around the cut."""

    round_runtime: Literal["auto", "ort", "openvino"] = "auto"
    """round_to: auto measures this runtime's steps (auto: OpenVINO where installed)."""
    round_precision: Literal["auto", "fp32", "int8"] = "auto"
    """round_to: auto measures in this precision (auto: int8 when a quantize stage follows)."""
    defer: bool = False
    """Judge this stage together with the stages after it (up to one that is not deferred),
    e.g. a distill that recovers its loss; when that chain does not fit, this stage's amount
    is halved and the chain runs again."""
    schedule: Literal["oneshot", "iterative"] = "oneshot"
    """oneshot: one cut; iterative: `rounds` cuts, each followed by fine-tuning, compounding
    to the amount."""
    rounds: int = Field(3, ge=1)
    """iterative: how many cut + fine-tune rounds."""
    finetune: Finetune = Finetune()
    """Recovery training after each cut."""
    budget: float | None = Field(None, ge=0)
    """What this stage may lose (default: the recipe's per_stage, else max_drop)."""
    fallback: bool = True
    """Over budget: bisect the amount for the largest share that fits."""
    bisect_steps: int = Field(3, ge=1, le=8)
    """How many amounts the fallback (or a deferred chain's) tries."""

    def scaled(self, fraction: float) -> PruneStage:
        """This stage removing `fraction` of its amount (a deferred chain's fallback)."""
        if fraction == 1.0 or self.granularity == "nm":
            return self
        key, amount = self.amount()
        return self.model_copy(update={key: amount * fraction})


def to_config(cfg: PruneStage, amount: float | None = None,
              ctx: Context | None = None) -> PruneConfig:
    """The PruneConfig of this stage (its own fields, the pipeline's dropped), removing
    `amount` (default: the configured one)."""
    key, _ = cfg.amount()
    fields = cfg.model_dump(include=set(PruneConfig.model_fields))
    fields["round_to"] = _rounding(cfg, ctx)
    if amount is not None and cfg.granularity != "nm":
        fields[key] = amount
    return PruneConfig(**fields)


def _rounding(cfg: PruneStage, ctx: Context | None):
    """round_to: an int as it is; auto → the latency steps of the runtime and precision this
    model will be deployed in (int8 when a quantize stage follows), at batch 1."""
    if not isinstance(cfg.round_to, LatencyRounding):
        return cfg.round_to

    precision = cfg.round_precision
    if precision == "auto":
        later = [next(iter(s)) for s in ctx.recipe.stages[ctx.index + 1:]] if ctx else []
        precision = "int8" if "quantize" in later else "fp32"
    threads = ctx.recipe.threads if ctx else 2
    return LatencyRounding(runtime=cfg.round_runtime, precision=precision, threads=threads)


def _cut(ctx: Context, model: nn.Module, cfg: PruneStage, fraction: float, tag: str):
    """Prune `model` (prune works on a copy) by `fraction` of the configured amount and
    fine-tune it; iterative: `rounds` cuts whose compound removal is that amount."""
    rounds = cfg.rounds if cfg.schedule == "iterative" else 1
    total = cfg.amount()[1] * fraction
    current, report = model, None
    for r in range(rounds):
        share = total if rounds == 1 else _round_share(total, r, rounds)
        current = _prune(ctx, current, cfg, share)
        report = record_of(current).report
        if r == 0:
            ctx.cache.known_macs(model, report.macs_before)
        ctx.cache.known_macs(current, report.macs_after)  # fine-tuning keeps the structure
        if cfg.finetune.epochs:
            ft = cfg.finetune
            ctx.train(current, ft, f"{tag}-round{r}",
                      ctx.recovery_loss(ft.kd, ft.temperature, ft.alpha))
    if report.reached is not None and report.reached < 0.999:
        ctx.say(f"prune reached {report.reached:.0%} of its target ({report.target}); "
                + "; ".join(report.notes[:3]))
    return current, report


def _prune(ctx: Context, model: nn.Module, cfg: PruneStage, amount: float | None):
    """prune with this stage's config, its errors named by the stage's path."""
    data, loss_fn = _importance_data(ctx, cfg, model)
    try:
        return prune(model, to_config(cfg, amount, ctx), example_args(ctx.data.example, 1),
                        data=data, loss_fn=loss_fn, task=ctx.task)
    except PruneError as e:
        raise RecipeError(f"stages[{ctx.index}].prune: {e}") from e
    except DependencyError as e:  # untraceable: say what to do instead
        raise RecipeError(f"stages[{ctx.index}].prune: {e}; structured pruning needs a "
                          "model torch.export can trace — use granularity: unstructured, "
                          "or unknown_ops: freeze") from e


def _round_share(total: float, r: int, rounds: int) -> float:
    """Fraction to remove in round r so that after all rounds `total` is removed."""
    keep = (1.0 - total) ** (1.0 / rounds)
    before = keep ** r
    return 1.0 - keep ** (r + 1) / before


def _importance_data(ctx: Context, cfg: PruneStage, model: nn.Module):
    """(batches, loss_fn) for the importances measured on data, else (None, None).
    Labelled: the calibration batches and cross-entropy. Unlabelled: each batch with the
    outputs `model` gives it now, and 1 − cosine to them — how far cutting moves the model."""
    if cfg.importance not in ("taylor", "mask"):
        return None, None
    if ctx.data.labeled and ctx.task.labeled:
        return ctx.data.calib, None  # prune measures the task's loss on them
    with torch.no_grad():
        data = [(b, _tensor_out(ctx, call_model(model.eval(), b)).detach())
                for b in ctx.data.calib]
    return data, lambda m, x, y: _output_change(_tensor_out(ctx, call_model(m, x)), y)


def _output_change(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return 1 - F.cosine_similarity(out.flatten(1).float(), ref.flatten(1).float()).mean()


def _tensor_out(ctx: Context, out):
    if not isinstance(out, torch.Tensor):
        raise RecipeError(f"stages[{ctx.index}].prune: importance on unlabelled data compares "
                          f"the model's outputs, which must be one tensor (got "
                          f"{type(out).__name__}); wrap the model to return its embedding")
    return out


@stage("prune", PruneStage, trains=True)
def run_prune(ctx: Context, model: nn.Module, cfg: PruneStage) -> StageResult:
    attempts: list[Attempt] = []
    models: dict[float, nn.Module] = {}
    info: dict = {}

    def attempt(fraction: float) -> Attempt:
        t0 = time.perf_counter()
        pruned, report = _cut(ctx, model, cfg, fraction, f"ckpt-{len(attempts)}")
        key, amount = cfg.amount()
        a = ctx.measure(pruned, f"{key} {amount * fraction:.3g}", cfg, t0,
                        note=f"{fraction:.0%} of the configured amount")
        attempts.append(a)
        models[fraction] = pruned
        info.setdefault("layers", {})[f"{fraction:.4f}"] = report.to_dict()
        return a

    first = attempt(1.0)
    if ctx.guard.deferred:
        return StageResult(models[1.0], attempts, f"{first.label}: deferred — judged where "
                           "its chain ends", False, _layers(info, 1.0), first)
    if first.fits or not cfg.fallback or cfg.granularity == "nm":
        return StageResult(models[1.0], attempts, _why(first, 1.0), False, _layers(info, 1.0),
                           first)
    ctx.say(f"prune: {ctx.over(first, cfg)}; bisecting the amount: {cfg.bisect_steps} more "
            f"attempts, about {first.seconds:.0f} s each")
    lo, hi, best = 0.0, 1.0, None
    for _ in range(cfg.bisect_steps):  # the largest fraction of the target that fits
        mid = (lo + hi) / 2
        if attempt(mid).fits:
            lo, best = mid, mid
        else:
            hi = mid
    if best is None:
        return StageResult(model, attempts, "skipped: no amount tried fits the budget", True,
                           {})
    chosen = next(a for a in attempts if a.note.startswith(f"{best:.0%}"))
    return StageResult(models[best], attempts, _why(chosen, best), False, _layers(info, best),
                       chosen)


def _why(a: Attempt, fraction: float) -> str:
    state = "fits the budget" if a.fits else "over budget (fallback off)"
    return f"{a.label} ({fraction:.0%} of the target): {state}"


def _layers(info: dict, fraction: float) -> dict:
    return {"layers": info["layers"][f"{fraction:.4f}"]["layers"],
            "notes": info["layers"][f"{fraction:.4f}"]["notes"]}


@planner("prune")
def plan_prune(ctx: Context, model: nn.Module, cfg: PruneStage):
    small = _prune(ctx, model, cfg, None)
    report = record_of(small).report
    text = str(report)
    if cfg.finetune.epochs:
        loss = ctx.recovery_loss(cfg.finetune.kd, cfg.finetune.temperature,
                                 cfg.finetune.alpha)
        how = loss.describe() if loss is not None else f"{ctx.task.kind}: {ctx.task.loss_name}"
        text += f"\nfine-tune {cfg.finetune.epochs} epoch(s) with {how}"
    if cfg.defer:
        text += "\ndeferred: judged with the stages after it, where the chain ends"
    return text, small
