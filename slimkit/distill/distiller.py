"""Distiller: a frozen teacher, a student, logit KD plus optional feature distillation.

`Distiller(teacher, ...)` is a loss function for the Trainer: loss(student, x, y). Feature
pairs are ('teacher layer', 'student layer') names; their outputs are caught with forward
hooks, and a learned adapter (1×1 conv or linear) maps the student's width to the teacher's
when they differ. The adapters are parameters of the Distiller: give them to the optimizer
(`Trainer` does, through `trainable()`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from slimkit.batch import call, rows
from slimkit.distill.config import DistillConfig
from slimkit.distill.losses import kd_loss
from slimkit.errors import ConfigError, check_choice
from slimkit.record import record_of
from slimkit.task import Task


def _adapter(student_out: torch.Tensor, teacher_out: torch.Tensor) -> nn.Module:
    cs, ct = student_out.shape[1], teacher_out.shape[1]
    if student_out.shape[2:] != teacher_out.shape[2:]:
        raise ConfigError(f"feature maps {tuple(student_out.shape)} (student) and "
                          f"{tuple(teacher_out.shape)} (teacher) differ beyond channels")
    if cs == ct:
        return nn.Identity()
    return nn.Conv2d(cs, ct, 1, bias=False) if student_out.dim() == 4 else nn.Linear(cs, ct)


class Distiller(nn.Module):
    """teacher=None: the uncompressed model the student was made from by slimkit's flows
    (sk.quantize / sk.prepare_qat remember it), resolved on the first call."""

    def __init__(self, teacher: nn.Module | None = None, temperature: float = 4.0,
                 alpha: float = 0.9, features: Sequence[tuple[str, str]] = (),
                 feature_weight: float = 1.0, output_loss: str | None = None,
                 task: Task | str = "classification") -> None:
        """The output term is the task's distillation loss (slimkit.task: Hinton KL for
        logits, MSE for regression outputs, 1 − cosine + MSE for embeddings, per-token KL),
        the target's loss mixed in by 1 − alpha. output_loss overrides it: kl (Hinton), mse
        or cosine (on the outputs, no target)."""
        super().__init__()
        if output_loss is not None:
            check_choice("Distiller.output_loss", output_loss, {"kl", "mse", "cosine"})
        self.task = Task.of(task)
        self.temperature, self.alpha, self.output_loss = temperature, alpha, output_loss
        self.features, self.feature_weight = list(features), feature_weight
        self.adapters = nn.ModuleDict()
        self._caught: dict[str, torch.Tensor] = {}
        self._hooked: set[int] = set()
        self.__dict__["teacher"] = None
        if teacher is not None:
            self._set_teacher(teacher)

    @classmethod
    def from_config(cls, teacher: nn.Module | None, config: DistillConfig,
                    task: Task | str = "classification") -> Distiller:
        return cls(teacher, config.temperature, config.alpha, config.features,
                   config.feature_weight, config.loss, task)

    def _set_teacher(self, teacher: nn.Module) -> None:
        # frozen and never trained: eval mode, no grad, and not a submodule whose parameters
        # an optimizer could pick up through the Distiller
        self.__dict__["teacher"] = copy.deepcopy(teacher).eval().requires_grad_(False)
        self._hook(self.teacher, [t for t, _ in self.features], "t:")

    def _hook(self, model: nn.Module, names: list[str], tag: str) -> None:
        modules = dict(model.named_modules())
        for name in names:
            if name not in modules:
                near = [n for n in modules if n][:10]
                raise ConfigError(f"feature layer {name!r} does not exist in "
                                  f"{type(model).__name__}; layers include {near}")

            def catch(_m, _i, out, key=tag + name):
                self._caught[key] = out

            modules[name].register_forward_hook(catch)

    def forward(self, student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s_model = student.module if hasattr(student, "module") else student
        if self.teacher is None:
            rec = record_of(s_model, create=False)
            original = rec.original if rec is not None else None
            if original is None:
                raise ConfigError("Distiller has no teacher: pass teacher=, or train a student "
                                  "made by sk.quantize / sk.prepare_qat / sk.prune (it "
                                  "remembers its uncompressed model)")
            self._set_teacher(original)
        if id(s_model) not in self._hooked:
            self._hook(s_model, [s for _, s in self.features], "s:")
            self._hooked.add(id(s_model))
        with torch.no_grad():
            t_logits = call(self.teacher, x)
        s_logits = call(student, x)  # x: the batch's inputs (a tensor, tuple or dict)
        loss = self._output_loss(s_logits, t_logits, y, x)
        for t_name, s_name in self.features:
            t_out, s_out = self._caught[f"t:{t_name}"], self._caught[f"s:{s_name}"]
            key = f"{t_name}->{s_name}".replace(".", "_")
            if key not in self.adapters:
                self.adapters[key] = _adapter(s_out, t_out).to(s_out.device)
            loss = loss + self.feature_weight * F.mse_loss(self.adapters[key](s_out), t_out)
        return loss

    def describe(self) -> str:
        what = self.output_loss or f"{self.task.kind} distillation"
        return f"Distiller ({what}, T={self.temperature:g}, alpha={self.alpha:g})"

    def _output_loss(self, s, t, y, x) -> torch.Tensor:
        if self.output_loss is None:
            return self.task.distill_value(s, t, y, self.temperature, self.alpha, x)
        if self.output_loss == "kl":
            return kd_loss(s, t, y, self.temperature, self.alpha)
        if s.shape != t.shape:
            raise ConfigError(f"student output {tuple(s.shape)} and teacher output "
                              f"{tuple(t.shape)} differ: the two models must predict alike")
        if self.output_loss == "mse":  # embeddings / hidden states: match them directly
            return F.mse_loss(s, t.detach())
        return (1 - F.cosine_similarity(s.flatten(1), t.detach().flatten(1), dim=1)).mean()

    def trainable(self, example_student: nn.Module, example_x: torch.Tensor) -> list:
        """Build the adapters with one forward (their shapes come from the features) and
        return their parameters, so they can join the student's optimizer."""
        # eval mode: this forward must not move the student's BN statistics or observers
        was_training = example_student.training
        example_student.eval()
        try:
            with torch.no_grad():
                labels = None if self.alpha == 1 or self.output_loss != "kl" else \
                    torch.zeros(rows(example_x), dtype=torch.long)
                self.forward(example_student, example_x, labels)
        finally:
            example_student.train(was_training)
        return list(self.adapters.parameters())
