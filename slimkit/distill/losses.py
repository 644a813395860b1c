"""Knowledge-distillation losses (Hinton et al. 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from slimkit.errors import ConfigError


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
            labels: torch.Tensor | None, temperature: float = 4.0,
            alpha: float = 0.9) -> torch.Tensor:
    """(1 − α)·CE(student, labels) + α·T²·KL(softmax(teacher/T) ‖ softmax(student/T)).

    KL is averaged over the batch ('batchmean'); T² keeps the soft-target gradients on the
    scale of the hard-label ones as T changes. The teacher's logits carry no gradient.
    labels=None (unlabelled data) requires alpha=1."""
    if student_logits.shape != teacher_logits.shape:
        raise ConfigError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                          f"{tuple(teacher_logits.shape)} differ: the two models must predict "
                          "the same classes")
    if temperature <= 0 or not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"kd_loss: temperature={temperature} must be > 0 and alpha={alpha} "
                          "in [0, 1]")
    if labels is None and alpha < 1.0:
        raise ConfigError("kd_loss: labels=None needs alpha=1 (no hard-label term)")
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=-1),
                    F.softmax(teacher_logits.detach() / t, dim=-1), reduction="batchmean")
    hard = F.cross_entropy(student_logits, labels) if alpha < 1.0 else soft.new_zeros(())
    return (1.0 - alpha) * hard + alpha * t * t * soft
