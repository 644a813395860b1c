"""The task: what the model predicts, and so which loss, distillation loss, metric and parity
measure every stage uses — declared in one place.

    kind                  training loss            distillation loss          metric (direction)
    classification        cross-entropy            Hinton KL · T² (+ CE)      top1 ↑
    multilabel            BCE with logits          BCE to soft targets · T²   map ↑ (or f1 ↑)
    regression            MSE (or Huber)           MSE to the teacher (+ MSE) mse ↓ (mae ↓, r2 ↑)
    embedding             1 − cos + MSE to the     1 − cos + MSE              cosine to the
                          original's outputs                                  original ↑
    token_classification  per-token CE (ignore)    per-token KL · T² (+ CE)   token_top1 ↑
    custom                pkg.mod:fn(outputs,      MSE to the teacher         pkg.mod:fn ↑ / ↓
                          batch) -> loss           (+ the custom loss)        (stated)

A recipe states `task:` or lets it be inferred from the data (`infer`), with the reason; the
Python API takes the same object (`Task.regression()`) or its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

import torch
import torch.nn.functional as F

from slimkit.batch import describe, join
from slimkit.config import Config
from slimkit.errors import ConfigError, check_choice
from slimkit.factory import import_attr
from slimkit.metrics import BUILTIN, Metric, cosine_to, token_top1

TaskKind = Literal["classification", "multilabel", "regression", "embedding",
                   "token_classification", "custom"]
KINDS = get_args(TaskKind)
DEFAULT_METRIC = {"classification": "top1", "multilabel": "map", "regression": "mse",
                  "embedding": "cosine", "token_classification": "token_top1", "custom": None}
METRICS = {"classification": ("top1",), "multilabel": ("map", "f1"),
           "regression": ("mse", "mae", "r2"), "embedding": ("cosine",),
           "token_classification": ("token_top1",), "custom": ()}
LOSSES = {"regression": ("mse", "huber")}


class TaskSpec(Config):
    """A task as a recipe states it (the metric comes from `eval`)."""

    kind: TaskKind
    """What the model predicts: classification, multilabel, regression, embedding,
    token_classification, custom."""
    loss: str | None = None
    """regression: mse | huber; custom: 'pkg.mod:fn' — fn(outputs, batch) -> loss."""
    ignore_index: int = -100
    """token_classification: target positions left out of the loss and the metric."""


@dataclass(frozen=True)
class Task:
    kind: str = "classification"
    loss: str | None = None  # regression: mse | huber; custom: 'pkg.mod:fn(outputs, batch)'
    metric: str | None = None  # default per kind (DEFAULT_METRIC); custom: 'pkg.mod:fn'
    higher_is_better: bool | None = None  # a custom metric's direction, stated
    ignore_index: int = -100  # token_classification: targets to leave out
    reason: str = field(default="", compare=False)  # why this task (stated, or inferred from …)

    def __post_init__(self) -> None:
        check_choice("task", self.kind, set(KINDS))
        allowed = LOSSES.get(self.kind, ())
        if self.kind == "custom":
            if not self.loss or ":" not in self.loss:
                raise ConfigError("task custom needs loss: 'pkg.mod:fn' — fn(outputs, batch) "
                                  "returns the training loss (a scalar tensor)")
        elif self.loss is not None and self.loss not in allowed:
            choose = f"choose one of {list(allowed)}" if allowed else "its loss is fixed"
            raise ConfigError(f"task {self.kind}: loss={self.loss!r} is not allowed; {choose} "
                              "(a loss of your own: task custom)")
        if (self.metric is not None and ":" not in self.metric
                and self.metric not in METRICS[self.kind] + ("cosine",)):
            raise ConfigError(f"metric {self.metric!r} does not fit task {self.kind}; allowed: "
                              f"{list(METRICS[self.kind]) + ['cosine', 'pkg.mod:fn']}")
        if self.metric_name is None:
            raise ConfigError("task custom needs metric: 'pkg.mod:fn' — fn(model, loader) -> "
                              "float — and higher_is_better")
        if ":" in self.metric_name and self.higher_is_better is None:
            raise ConfigError(f"metric {self.metric_name!r}: state higher_is_better (true for "
                              "an accuracy, false for an error)")

    # ---- constructors ----------------------------------------------------------------------
    @classmethod
    def classification(cls) -> Task:
        return cls("classification")

    @classmethod
    def multilabel(cls, metric: str = "map") -> Task:
        return cls("multilabel", metric=metric)

    @classmethod
    def regression(cls, loss: str = "mse", metric: str = "mse") -> Task:
        return cls("regression", loss=loss, metric=metric)

    @classmethod
    def embedding(cls) -> Task:
        return cls("embedding")

    @classmethod
    def token_classification(cls, ignore_index: int = -100) -> Task:
        return cls("token_classification", ignore_index=ignore_index)

    @classmethod
    def custom(cls, loss: str, metric: str, higher_is_better: bool) -> Task:
        return cls("custom", loss=loss, metric=metric, higher_is_better=higher_is_better)

    @classmethod
    def of(cls, task: Task | str) -> Task:
        """A Task, or its name (the defaults of that kind)."""
        if isinstance(task, Task):
            return task
        check_choice("task", task, set(KINDS) - {"custom"})
        return cls(task)

    def because(self, reason: str) -> Task:
        return replace(self, reason=reason)

    # ---- what it means -----------------------------------------------------------------------
    @property
    def labeled(self) -> bool:
        """Trained against targets; an embedding task learns the original's outputs."""
        return self.kind != "embedding"

    @property
    def metric_name(self) -> str | None:
        return self.metric or DEFAULT_METRIC[self.kind]

    @property
    def loss_name(self) -> str:
        return {"classification": "cross-entropy", "multilabel": "BCE with logits",
                "regression": self.loss or "mse", "embedding": "1 − cosine + MSE to the "
                "original's outputs", "token_classification": "per-token cross-entropy",
                "custom": self.loss or ""}[self.kind]

    def describe(self) -> str:
        text = f"task {self.kind} (loss {self.loss_name}, metric {self.metric_name})"
        return text + (f" — {self.reason}" if self.reason else "")

    # ---- losses -----------------------------------------------------------------------------
    def loss_value(self, outputs, target, inputs=None) -> torch.Tensor:
        """The training loss of outputs against the batch's target (for embedding: against
        the original model's outputs, passed as `target`)."""
        out = _tensor(outputs, self)
        if self.kind == "classification":
            return F.cross_entropy(out, target)
        if self.kind == "multilabel":
            return F.binary_cross_entropy_with_logits(out, target.to(out.dtype).reshape(out.shape))
        if self.kind == "regression":
            y = target.to(out.dtype).reshape(out.shape)
            return F.huber_loss(out, y) if self.loss == "huber" else F.mse_loss(out, y)
        if self.kind == "embedding":
            return embedding_loss(out, target)
        if self.kind == "token_classification":
            return F.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1),
                                   ignore_index=self.ignore_index)
        return _custom(self.loss)(outputs, join(inputs, target))

    def distill_value(self, student, teacher, target, temperature: float, alpha: float,
                      inputs=None) -> torch.Tensor:
        """α · (match the teacher) + (1 − α) · (the training loss on the target); without a
        target (or for embedding) only the first term."""
        s, t = _tensor(student, self), _tensor(teacher, self).detach()
        if s.shape != t.shape:
            raise ConfigError(f"student output {tuple(s.shape)} and teacher output "
                              f"{tuple(t.shape)} differ: the two models must predict alike")
        if self.kind in ("classification", "token_classification"):
            soft = _soft_kl(s, t, temperature, self._token_mask(target))
        elif self.kind == "multilabel":
            soft = temperature ** 2 * F.binary_cross_entropy_with_logits(
                s / temperature, torch.sigmoid(t / temperature))
        elif self.kind == "embedding":
            return embedding_loss(s, t)
        else:  # regression, custom: the teacher's outputs as targets
            soft = F.mse_loss(s, t)
        if target is None or alpha >= 1.0:
            return soft
        return alpha * soft + (1.0 - alpha) * self.loss_value(student, target, inputs)

    def _token_mask(self, target) -> torch.Tensor | None:
        if self.kind != "token_classification" or target is None:
            return None
        return target.reshape(-1) != self.ignore_index

    # ---- checks -----------------------------------------------------------------------------
    def check(self, outputs, target, where: str = "data") -> None:
        """Refuse, before any training, a loss or metric that does not fit the targets."""
        out = _tensor(outputs, self)
        msg = self._mismatch(out, target)
        if msg is None and self.metric_name in BUILTIN:
            msg = _metric_mismatch(self.metric_name, target)
        if msg:
            raise ConfigError(f"{where}: {self.kind} task, outputs {describe(out)}, targets "
                              f"{describe(target)}: {msg}")

    def _mismatch(self, out: torch.Tensor, y) -> str | None:
        if self.kind in ("embedding", "custom"):
            return None
        if y is None:
            return (f"a {self.kind} loss needs targets and the batches carry none; for "
                    "unlabelled data state task: embedding (the original's outputs are learnt)")
        if not isinstance(y, torch.Tensor):
            return f"the target must be a tensor, not {type(y).__name__}"
        return _TARGET_CHECKS[self.kind](out, y)

    # ---- metric and parity ----------------------------------------------------------------------
    def metric_spec(self, reference: torch.Tensor | None = None) -> Metric:
        """The metric this task is measured by; `reference`: the original model's outputs on
        the validation data (for cosine)."""
        name = self.metric_name
        if name == "cosine":
            if reference is None:
                raise ConfigError("metric cosine compares to the original model's outputs: "
                                  "pass reference=")
            return Metric("cosine", "cosine", True, cosine_to(reference))
        if name == "token_top1":
            unit, hib, _, _ = BUILTIN[name]
            return Metric(name, unit, hib, lambda m, d: token_top1(m, d, self.ignore_index))
        if name in BUILTIN:
            unit, hib, fn, _ = BUILTIN[name]
            return Metric(name, unit, hib, fn)
        fn = import_attr(name)
        return Metric(name, name, bool(self.higher_is_better), fn)

    def parity_keys(self) -> tuple[str, ...]:
        """Which output-agreement measures mean something for this task."""
        return {"classification": ("top1_agreement", "cosine"),
                "token_classification": ("top1_agreement", "cosine"),
                "multilabel": ("label_agreement", "cosine"),
                "regression": ("rel_error", "max_abs_diff"),
                "embedding": ("cosine", "cosine_min")}.get(self.kind, ("rel_error", "cosine"))


def _classification_targets(out: torch.Tensor, y: torch.Tensor) -> str | None:
    if y.is_floating_point():
        return ("cross-entropy needs class indices (an integer tensor [B]); these are real "
                "values — for real-valued targets state task: regression")
    if out.dim() != 2 or y.dim() != 1 or out.shape[0] != y.shape[0]:
        return "a classifier needs outputs [B, classes] and class indices [B]"
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= out.shape[1]):
        return f"class indices must lie in [0, {out.shape[1]}) (the output's columns)"
    return None


def _regression_targets(out: torch.Tensor, y: torch.Tensor) -> str | None:
    if not y.is_floating_point():
        return ("MSE on class indices: the targets are integers — for class labels state "
                "task: classification; for counts, give them as floats")
    if out.numel() != y.numel():
        return "outputs and targets must hold as many values per sample"
    return None


def _multilabel_targets(out: torch.Tensor, y: torch.Tensor) -> str | None:
    if out.shape != y.shape:
        return "a multi-label model's outputs and 0/1 targets must have one shape"
    if not bool(((y == 0) | (y == 1)).all()):
        return "multi-label targets must be 0 or 1"
    return None


def _token_targets(out: torch.Tensor, y: torch.Tensor) -> str | None:
    if y.is_floating_point() or out.dim() != y.dim() + 1 or out.shape[:-1] != y.shape:
        return "a token classifier needs outputs [B, T, classes] and class indices [B, T]"
    return None


_TARGET_CHECKS = {"classification": _classification_targets,
                  "regression": _regression_targets, "multilabel": _multilabel_targets,
                  "token_classification": _token_targets}


def embedding_loss(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """1 − cosine (direction) + MSE (scale) to the reference outputs."""
    ref = ref.detach().to(out.dtype)
    cos = F.cosine_similarity(out.flatten(1), ref.flatten(1), dim=1).mean()
    return (1 - cos) + F.mse_loss(out, ref)


def _soft_kl(s: torch.Tensor, t: torch.Tensor, temperature: float,
             keep: torch.Tensor | None) -> torch.Tensor:
    """Hinton's T²·KL(softmax(t/T) ‖ softmax(s/T)), per sample (or per kept token)."""
    s, t = s.reshape(-1, s.shape[-1]), t.reshape(-1, t.shape[-1])
    if keep is not None:
        s, t = s[keep], t[keep]
    kl = F.kl_div(F.log_softmax(s / temperature, -1), F.softmax(t / temperature, -1),
                  reduction="batchmean")
    return temperature * temperature * kl


def _tensor(outputs, task: Task) -> torch.Tensor:
    if isinstance(outputs, torch.Tensor):
        return outputs
    logits = getattr(outputs, "logits", None)  # a Hugging Face ModelOutput
    if isinstance(logits, torch.Tensor):
        return logits
    raise ConfigError(f"task {task.kind}: the model returned {type(outputs).__name__}, the "
                      "loss needs one tensor; wrap the model to return it, or use task "
                      "custom with a loss that reads its outputs")


def _metric_mismatch(name: str, y) -> str | None:
    wants = BUILTIN[name][3]
    if name == "cosine":
        return None
    if y is None:
        return f"metric {name} needs targets ({wants}); the batches carry none"
    if wants == "class indices" and y.is_floating_point():
        return f"metric {name} compares class indices; these targets are real values"
    if wants == "real values" and not y.is_floating_point():
        return f"metric {name} measures real values; these targets are integers"
    return None


_CUSTOM: dict[str, Callable] = {}


def _custom(spec: str) -> Callable:
    if spec not in _CUSTOM:
        try:
            _CUSTOM[spec] = import_attr(spec)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"task custom: cannot import loss {spec!r} ({e})") from e
    return _CUSTOM[spec]


def infer(outputs, target) -> Task:
    """The task the data makes unambiguous, with the reason; ConfigError where it does not."""
    out = outputs if isinstance(outputs, torch.Tensor) else getattr(outputs, "logits", None)
    if target is None:
        return Task.embedding().because("inferred: the batches carry no target")
    if not isinstance(target, torch.Tensor):
        raise ConfigError(f"cannot infer the task from a {type(target).__name__} target: "
                          f"state task: one of {list(KINDS)}")
    shape = f"{describe(target)} targets"
    if target.dtype == torch.bool:
        return Task.multilabel().because(f"inferred: {shape} are 0/1 labels")
    if target.is_floating_point():
        note = ""
        if out is not None and out.shape == target.shape and target.dim() == 2 and bool(
                ((target == 0) | (target == 1)).all()):
            note = " (all 0/1: if they are labels, state task: multilabel)"
        return Task.regression().because(f"inferred: {shape} are real values{note}")
    if target.dim() == 1:
        return Task.classification().because(f"inferred: {shape} are class indices [B]")
    if out is not None and out.dim() == target.dim() + 1 and out.shape[:-1] == target.shape:
        return Task.token_classification().because(
            f"inferred: {shape} are class indices per position of outputs {describe(out)}")
    if out is not None and out.shape == target.shape and bool(
            ((target == 0) | (target == 1)).all()):
        return Task.multilabel().because(f"inferred: {shape} are 0/1 labels, one per output")
    raise ConfigError(f"cannot infer the task from {shape} and outputs "
                      f"{describe(out) if out is not None else type(outputs).__name__}: state "
                      f"task: one of {list(KINDS)}")


__all__ = ["DEFAULT_METRIC", "KINDS", "METRICS", "Task", "TaskKind", "TaskSpec",
           "embedding_loss", "infer"]
