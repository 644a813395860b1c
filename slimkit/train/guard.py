"""The first optimizer steps of a run, checked: training that trains nothing is an error.

A loss that is exactly zero, not finite, or gives every trainable tensor a zero gradient
means the loss does not fit the data (cross-entropy on real-valued targets, a KL between two
single-column outputs, a student equal to its teacher). Left alone it would "finish" and the
model would be returned unchanged, so the Trainer raises within the first steps instead.
"""

from __future__ import annotations

import math

import torch

from slimkit.errors import SlimkitError

GUARD_STEPS = 3  # optimizer steps watched from the start of a run
ZERO = 1e-6  # rounding: a T²-scaled KL between equal distributions lands near 4e-7


class TrainingError(SlimkitError):
    """Training cannot change the model: the message names the loss and the likely cause."""


class LossGuard:
    def __init__(self, loss_fn, check_finite: bool = True, steps: int = GUARD_STEPS) -> None:
        self.loss_fn, self.check_finite, self.steps = loss_fn, check_finite, steps
        self.zero_loss = self.zero_grad = 0

    def after_backward(self, step: int, loss: float, params: list[torch.Tensor]) -> None:
        """Called once per optimizer step, gradients accumulated, before the update."""
        if step >= self.steps:
            return
        name = describe_loss(self.loss_fn)
        if self.check_finite and not math.isfinite(loss):
            raise TrainingError(f"training loss ({name}) is {loss} at step {step}: the inputs "
                                "or targets hold NaN / inf, or the learning rate is too high")
        self.zero_loss += abs(loss) <= ZERO
        self.zero_grad += not any(p.grad is not None and bool(p.grad.any()) for p in params)
        if step + 1 < self.steps:
            return
        if self.zero_loss == self.steps:
            raise TrainingError(
                f"training loss ({name}) is 0 (≤ {ZERO:g}) for the first {self.steps} steps: "
                "nothing is trained. The loss does not fit the data (a task's loss on targets of "
                "another kind — state the task), or the model already equals its teacher "
                "(distillation without a change before it)")
        if self.zero_grad == self.steps:
            raise TrainingError(
                f"training loss ({name}) gives every trainable tensor a zero gradient for the "
                f"first {self.steps} steps: nothing is trained. The loss does not depend on "
                "the model's parameters (frozen, detached, or an argmax in the loss)")


def describe_loss(loss_fn) -> str:
    describe = getattr(loss_fn, "describe", None)
    if callable(describe):
        return describe()
    return getattr(loss_fn, "__name__", type(loss_fn).__name__)
