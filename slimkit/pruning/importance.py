"""Importance: one score per channel of a group, aggregated over every tensor the group cuts.

    l1 / l2     magnitude of all coupled weights (conv filters, BN, next layer's inputs)
    taylor      |w · ∂L/∂w| summed over the coupled weights (first order; needs data and a loss)
    bn_gamma    |γ| of the group's normalization layers (network slimming)
    mask        the loss increase when the channel (an attention head) is masked — all its
                coupled slices zeroed, exactly what removing it does — measured on data
    random      the baseline every criterion must beat
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from slimkit.batch import call, split
from slimkit.errors import ConfigError
from slimkit.graph.deps import DependencyGraph, Group
from slimkit.task import Task


def task_loss(task: Task | str = "classification") -> Callable:
    """loss(model, inputs, target) of a task (slimkit.task): what data-driven importances
    measure the change of."""
    t = Task.of(task)
    return lambda m, x, y: t.loss_value(call(m, x), y, x)


def taylor_grads(model: nn.Module, data: Iterable | None,
                 loss_fn: Callable | None = None) -> dict[str, torch.Tensor]:
    """Σ over batches of ∂L/∂w for every parameter (model left in its mode, grads cleared)."""
    if data is None:
        raise ConfigError("importance='taylor' needs data=[(inputs, targets), …] and a loss")
    loss_fn = loss_fn or task_loss()
    params = dict(model.named_parameters(remove_duplicate=False))  # tied: all names
    acc = {k: torch.zeros_like(p) for k, p in params.items()}
    n = 0
    for x, y in map(split, data):
        model.zero_grad(set_to_none=True)
        loss_fn(model, x, y).backward()
        for k, p in params.items():
            if p.grad is not None:
                acc[k] += p.grad
        n += 1
    model.zero_grad(set_to_none=True)
    if n == 0:
        raise ConfigError("importance='taylor' got an empty data iterable")
    return acc


def group_scores(model: nn.Module, graph: DependencyGraph, group: Group, kind: str,
                 grads: dict[str, torch.Tensor] | None = None, seed: int = 0) -> torch.Tensor:
    """(group.size,) importance per channel; higher means keep."""
    if kind == "random":
        g = torch.Generator().manual_seed(seed * 100_003 + group.leaf)
        return torch.rand(group.size, generator=g).to(next(model.parameters()).device)
    tensors = dict(model.named_parameters(remove_duplicate=False))
    modules = dict(model.named_modules())
    device = next(model.parameters()).device
    score = torch.zeros(group.size, dtype=torch.float64, device=device)
    for m in group.members:
        if m.kind != "param":
            continue
        if kind == "bn_gamma" and not (m.name.endswith(".weight") and isinstance(
                modules.get(m.module), nn.modules.batchnorm._BatchNorm | nn.GroupNorm)):
            continue
        w = tensors[m.name].detach().double()
        if kind == "taylor":
            w = (w * grads[m.name].double()).abs()
        per_pos = _reduce_all_but(w.abs() if kind in ("l1", "bn_gamma", "taylor") else w * w,
                                  m.dim)
        owner = graph.spaces.owner(graph.param_dims[m.name][m.dim], group.leaf).to(device)
        hit = owner >= 0
        score.index_add_(0, owner[hit], per_pos[hit])
    if kind == "bn_gamma" and not score.any():
        raise ConfigError(f"importance='bn_gamma': the group produced by {group.owners} has no "
                          f"BatchNorm/GroupNorm weight; use 'l1' for it")
    return score


def _reduce_all_but(w: torch.Tensor, dim: int) -> torch.Tensor:
    return w.movedim(dim, 0).reshape(w.shape[dim], -1).sum(1)


MASK_MAX_CHANNELS = 64  # one evaluation per channel: meant for heads, not for FFN neurons


@torch.no_grad()
def masking_scores(model: nn.Module, graph: DependencyGraph, group: Group, data,
                   loss_fn: Callable | None) -> torch.Tensor:
    """(group.size,) loss increase on `data` when each channel is removed (zeroed in every
    tensor the group cuts), one channel at a time; the model is restored after each."""
    if data is None:
        raise ConfigError("importance='mask' needs data=[(inputs, targets), …] and a loss")
    if group.size > MASK_MAX_CHANNELS:
        raise ConfigError(f"importance='mask' evaluates the loss once per channel; the group "
                          f"produced by {group.owners} has {group.size} (more than "
                          f"{MASK_MAX_CHANNELS}): use granularity='head', or 'taylor'")
    loss_fn = loss_fn or task_loss()
    batches = [split(b) for b in data]
    was = model.training
    model.eval()
    params = dict(model.named_parameters(remove_duplicate=False))  # tied: all names
    slices = []
    for m in group.members:
        if m.kind == "param":
            owner = graph.spaces.owner(graph.param_dims[m.name][m.dim], group.leaf)
            slices.append((params[m.name], m.dim, owner.to(params[m.name].device)))

    def loss() -> float:
        return sum(float(loss_fn(model, x, y)) for x, y in batches)

    base = loss()
    out = torch.zeros(group.size, dtype=torch.float64)
    for j in range(group.size):
        saved = []
        for p, dim, owner in slices:
            idx = (owner == j).nonzero().flatten()
            saved.append((p, dim, idx, p.index_select(dim, idx).clone()))
            p.index_fill_(dim, idx, 0.0)
        out[j] = loss() - base
        for p, dim, idx, v in saved:
            p.index_copy_(dim, idx, v)
    model.train(was)
    return out
