"""The `distill` stage: train the current (pruned, smaller) model to match the original.

The teacher is the recipe's original model. The loss is the task's distillation loss
(slimkit.task: Hinton KL on logits, MSE on regression outputs, 1 − cosine + MSE on embeddings,
per-token KL), mixed with the targets' loss by 1 − alpha; `loss` overrides it (kl / mse /
cosine on the outputs). Over budget: train once more with twice the epochs (up to
max_epochs), saying how long that will take; still over → the stage rolls back to its input.
A student that comes out equal to its input is an error: nothing was distilled.
"""

from __future__ import annotations

import copy
import time

from pydantic import Field
from torch import nn

from slimkit.distill import DistillConfig, Distiller
from slimkit.pipeline.context import Context, StageResult, unchanged
from slimkit.pipeline.registry import planner, stage
from slimkit.train.config import Schedule


class DistillStage(DistillConfig, Schedule):
    """Every DistillConfig and Schedule field, plus the guard."""

    epochs: int = Field(5, ge=1)
    """Epochs of the first attempt."""
    max_epochs: int = Field(20, ge=1)
    """Over budget: train again with twice the epochs, up to this."""
    budget: float | None = Field(None, ge=0)
    """What this stage may lose (default: the recipe's per_stage, else max_drop)."""
    fallback: bool = True
    """Over budget: train again longer; still over, the stage rolls back."""


def _distiller(ctx: Context, cfg: DistillStage) -> Distiller:
    alpha = cfg.alpha if ctx.data.labeled else 1.0  # no target: the teacher alone
    return Distiller.from_config(ctx.original, cfg.replace(alpha=alpha), ctx.task)


@stage("distill", DistillStage, trains=True)
def run_distill(ctx: Context, model: nn.Module, cfg: DistillStage) -> StageResult:
    loss_kind = cfg.loss or ctx.task.kind

    def attempt(epochs: int):
        t0 = time.perf_counter()
        student = copy.deepcopy(model)
        kd = _distiller(ctx, cfg)
        extra = kd.trainable(student, ctx.data.example) if cfg.features else []
        ctx.train(student, cfg.model_copy(update={"epochs": epochs}), f"ckpt-{epochs}", kd,
                  extra)
        unchanged(ctx, model, student, "distill")
        return ctx.measure(student, f"KD {loss_kind}, {epochs} epochs", cfg, t0), student

    tried = ctx.doubling("distill", cfg.epochs, cfg.max_epochs, cfg.fallback, cfg, attempt)
    attempts = [a for a, _ in tried]
    a, student = tried[-1]
    if a.fits or not cfg.fallback:
        return StageResult(student, attempts, f"{a.label}: fits the budget" if a.fits else
                           f"{a.label}: over budget (fallback off)", chosen=a)
    return StageResult(model, attempts, "rolled back: distillation did not reach the budget",
                       True)


@planner("distill")
def plan_distill(ctx: Context, model: nn.Module, cfg: DistillStage):
    return (f"train {type(model).__name__} for {cfg.epochs} epochs to match the original "
            f"({_distiller(ctx, cfg).describe()}"
            + (f", features {cfg.features}" if cfg.features else "") + ")"), model
