"""A small supervised loop (the full Trainer with callbacks, AMP and DDP is its own issue)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def fit(
    model: nn.Module,
    loader: Iterable,
    epochs: int,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    loss_fn: LossFn = F.cross_entropy,
    progress: bool = True,
    desc: str = "training",
) -> nn.Module:
    """AdamW with a cosine schedule over all steps; (inputs, labels) batches."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * len(loader)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.train()
    # disable=None: bars only on a terminal, never in CI logs or pipes
    bar = tqdm(total=steps, desc=desc, disable=None if progress else True, leave=False)
    for _ in range(epochs):
        for x, y in loader:
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    return model


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
