"""The `distill` stage: train the current (pruned, smaller) model to match the original.

The teacher is the recipe's original model unless `teacher` names a factory. Labelled data:
Hinton KD on logits (temperature, alpha); unlabelled data (text): the outputs themselves
(mse / cosine). Over budget: train once more with twice the epochs (up to max_epochs); still
over → the stage rolls back to its input.
"""

from __future__ import annotations

import copy
import time
from typing import Literal

from pydantic import Field
from torch import nn

from slimkit.distill import Distiller
from slimkit.pipeline.context import Context, StageResult
from slimkit.pipeline.recipe import Strict
from slimkit.pipeline.stages import planner, stage


class DistillStage(Strict):
    epochs: int = Field(5, ge=1)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1)
    loss: Literal["kl", "mse", "cosine"] | None = None  # default: kl if labelled, else mse
    features: list[tuple[str, str]] = []  # (teacher layer, student layer) pairs
    feature_weight: float = Field(1.0, ge=0)
    max_epochs: int = Field(20, ge=1)
    budget: float | None = Field(None, ge=0)
    fallback: bool = True


@stage("distill", DistillStage, trains=True)
def run_distill(ctx: Context, model: nn.Module, cfg: DistillStage) -> StageResult:
    attempts, epochs = [], cfg.epochs
    loss_kind = cfg.loss or ("kl" if ctx.data.labeled else "mse")
    while True:
        t0 = time.perf_counter()
        student = copy.deepcopy(model)
        kd = Distiller(ctx.original, cfg.temperature, cfg.alpha, cfg.features,
                       cfg.feature_weight, loss_kind)
        extra = kd.trainable(student, ctx.data.example) if cfg.features else []
        ctx.train(student, cfg.model_copy(update={"epochs": epochs}), f"ckpt-{epochs}", kd,
                  extra)
        a = ctx.measure(student, f"KD {loss_kind}, {epochs} epochs", cfg, t0)
        attempts.append(a)
        if a.fits or not cfg.fallback or epochs * 2 > cfg.max_epochs:
            break
        epochs *= 2
    if a.fits or not cfg.fallback:
        return StageResult(student, attempts, f"{a.label}: fits the budget" if a.fits else
                           f"{a.label}: over budget (fallback off)", chosen=a)
    return StageResult(model, attempts, "rolled back: distillation did not reach the budget",
                       True)


@planner("distill")
def plan_distill(ctx: Context, model: nn.Module, cfg: DistillStage):
    loss = cfg.loss or ("kl" if ctx.data.labeled else "mse")
    return (f"train {type(model).__name__} for {cfg.epochs} epochs to match the original "
            f"({loss} on outputs" + (f", features {cfg.features}" if cfg.features else "")
            + ")"), model
