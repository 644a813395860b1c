"""Metrics over a loader of batches (the data contract of batch.py): a model in, one number out.

Each is a plain function `fn(model, loader) -> float`; `Metric` adds its name, unit and
direction, so a budget knows whether a drop is a fall or a rise. Percentages for the
classification metrics (a budget of 1.0 is one point), raw values for the regression ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from slimkit.batch import call, split


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # shown in tables: "% top-1", "MSE", …
    higher_is_better: bool
    fn: Callable[[nn.Module, Iterable], float]

    def __call__(self, model: nn.Module, loader: Iterable) -> float:
        return self.fn(model, loader)

    def drop(self, reference: float, value: float) -> float:
        """How much worse `value` is than `reference`, in the metric's units (< 0: better)."""
        return reference - value if self.higher_is_better else value - reference

    def worse(self, a: float, b: float) -> float:
        """The worse of two values."""
        return min(a, b) if self.higher_is_better else max(a, b)

    def limit(self, reference: float, budget: float) -> float:
        """The worst value a budget allows below (or above) `reference`."""
        return reference - budget if self.higher_is_better else reference + budget


@torch.no_grad()
def collect(model: nn.Module, loader: Iterable) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(outputs, targets) over the whole loader in eval mode, concatenated on dim 0."""
    was = model.training
    model.eval()
    outs, ys = [], []
    try:
        for batch in loader:
            inputs, y = split(batch)
            out = call(model, inputs)
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"{type(model).__name__} returned {type(out).__name__}; the "
                                "metrics read one output tensor (wrap the model to return it)")
            outs.append(out.float())
            if y is not None:
                ys.append(y)
    finally:
        model.train(was)
    return torch.cat(outs), (torch.cat(ys) if ys else None)


def _targets(y: torch.Tensor | None, name: str) -> torch.Tensor:
    if y is None:
        raise ValueError(f"metric {name} needs targets; the batches carry none")
    return y


def top1(model: nn.Module, loader: Iterable) -> float:
    """% of samples whose argmax is the target class."""
    out, y = collect(model, loader)
    y = _targets(y, "top1")
    return 100.0 * float((out.argmax(-1) == y).float().mean())


def token_top1(model: nn.Module, loader: Iterable, ignore_index: int = -100) -> float:
    """% of tokens (target ≠ ignore_index) whose argmax is the target class."""
    out, y = collect(model, loader)
    y = _targets(y, "token_top1")
    keep = y != ignore_index
    return 100.0 * float((out.argmax(-1)[keep] == y[keep]).float().mean())


def mse(model: nn.Module, loader: Iterable) -> float:
    out, y = collect(model, loader)
    y = _targets(y, "mse").float()
    return float(((out.reshape(y.shape) - y) ** 2).mean())


def mae(model: nn.Module, loader: Iterable) -> float:
    out, y = collect(model, loader)
    y = _targets(y, "mae").float()
    return float((out.reshape(y.shape) - y).abs().mean())


def r2(model: nn.Module, loader: Iterable) -> float:
    """Coefficient of determination, averaged over outputs (scikit-learn's uniform average)."""
    out, y = collect(model, loader)
    y = _targets(y, "r2").float().reshape(len(out), -1)
    out = out.reshape(y.shape)
    res = ((y - out) ** 2).sum(0)
    tot = ((y - y.mean(0)) ** 2).sum(0).clamp_min(1e-12)
    return float((1 - res / tot).mean())


def average_precision(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over labels (columns with a positive) of each label's average precision."""
    aps = []
    for j in range(scores.shape[1]):
        pos = labels[:, j] > 0.5
        if not pos.any():
            continue
        order = scores[:, j].argsort(descending=True)
        hits = pos[order].float()
        precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
        aps.append(float((precision * hits).sum() / hits.sum()))
    return sum(aps) / len(aps) if aps else float("nan")


def mean_ap(model: nn.Module, loader: Iterable) -> float:
    """% mean average precision of a multi-label model (logits, one column per label)."""
    out, y = collect(model, loader)
    return 100.0 * average_precision(out.reshape(len(out), -1),
                                     _targets(y, "map").reshape(len(out), -1))


def f1(model: nn.Module, loader: Iterable) -> float:
    """% micro-averaged F1 of a multi-label model, a label predicted where its logit > 0."""
    out, y = collect(model, loader)
    y = _targets(y, "f1").reshape(len(out), -1) > 0.5
    pred = out.reshape(y.shape) > 0
    tp = float((pred & y).sum())
    return 100.0 * 2 * tp / max(float(pred.sum() + y.sum()), 1.0)


def cosine_to(reference: torch.Tensor) -> Callable[[nn.Module, Iterable], float]:
    """Mean per-sample cosine similarity of the model's outputs to `reference` (N, …)."""
    def fn(model: nn.Module, loader: Iterable) -> float:
        out, _ = collect(model, loader)
        return cosine(out, reference)
    return fn


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.reshape(len(a), -1).double(), b.reshape(len(b), -1).double()
    return float(torch.nn.functional.cosine_similarity(a, b, dim=1).mean())


# name → (unit, higher is better, fn, what the targets must be)
BUILTIN: dict[str, tuple[str, bool, Callable, str]] = {
    "top1": ("% top-1", True, top1, "class indices"),
    "token_top1": ("% token top-1", True, token_top1, "class indices"),
    "map": ("% mAP", True, mean_ap, "0/1 labels"),
    "f1": ("% F1", True, f1, "0/1 labels"),
    "mse": ("MSE", False, mse, "real values"),
    "mae": ("MAE", False, mae, "real values"),
    "r2": ("R²", True, r2, "real values"),
    "cosine": ("cosine", True, None, "none (the original model's outputs)"),
}


__all__ = ["BUILTIN", "Metric", "average_precision", "collect", "cosine", "cosine_to", "f1",
           "mae", "mean_ap", "mse", "r2", "token_top1", "top1"]
