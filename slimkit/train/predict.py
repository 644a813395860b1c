"""Inference helpers over (inputs, labels) loaders."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) over the whole loader, in eval mode."""
    model.eval()
    outs, labels = [], []
    for x, y in loader:
        outs.append(model(x))
        labels.append(y)
    return torch.cat(outs), torch.cat(labels)


def evaluate(model: nn.Module, loader: Iterable) -> float:
    """Top-1 accuracy in percent."""
    logits, labels = predict(model, loader)
    return 100.0 * (logits.argmax(dim=1) == labels).float().mean().item()
