"""DistillConfig: how a student learns from its teacher — one typed config (slimkit.config),
read by `Distiller.from_config` and extended by the recipe's `distill` stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from slimkit.config import Config


class DistillConfig(Config):
    """The distillation loss."""

    temperature: float = Field(4.0, gt=0)
    """Softmax temperature of the soft targets (classification, token classification,
    multi-label); the KL term is scaled by T² to keep its gradients on the labels' scale."""
    alpha: float = Field(0.9, ge=0, le=1)
    """Weight of the teacher's term; 1 − alpha weighs the targets' own loss (unlabelled data:
    the teacher alone)."""
    loss: Literal["kl", "mse", "cosine"] | None = None
    """The output term: None is the task's distillation loss (Hinton KL for logits, MSE for
    regression outputs, 1 − cosine + MSE for embeddings, per-token KL); kl / mse / cosine
    force one."""
    features: tuple[tuple[str, str], ...] = ()
    """(teacher layer, student layer) pairs whose outputs are matched too (MSE, through a
    learned 1×1 adapter where the widths differ)."""
    feature_weight: float = Field(1.0, ge=0)
    """Weight of the feature terms."""


__all__ = ["DistillConfig"]
