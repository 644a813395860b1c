"""Sparsity-inducing loss terms, trained in before a structured cut.

    loss_fn = with_penalty(cross_entropy, bn_l1(1e-4))          # network slimming (Liu 2017)
    loss_fn = with_penalty(cross_entropy, group_lasso(1e-4, graph))

bn_l1 pushes BN scales γ to zero (then importance='bn_gamma' cuts those channels);
group_lasso pushes whole coupled groups (every tensor a channel lives in) to zero together.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from slimkit.graph.deps import DependencyGraph

Penalty = Callable[[nn.Module], torch.Tensor]


def bn_l1(strength: float) -> Penalty:
    def penalty(model: nn.Module) -> torch.Tensor:
        terms = [m.weight.abs().sum() for m in model.modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None]
        return strength * torch.stack(terms).sum() if terms else torch.zeros(())
    return penalty


def group_lasso(strength: float, graph: DependencyGraph) -> Penalty:
    """Σ_groups Σ_channels ‖all weights of that channel‖₂ (Wen et al. 2016, over coupled dims)."""
    plan = []
    for g in graph.groups():
        for m in g.members:
            if m.kind == "param":
                owner = graph.spaces.owner(graph.param_dims[m.name][m.dim], g.leaf)
                plan.append((g.leaf, g.size, m.name, m.dim, owner))

    def penalty(model: nn.Module) -> torch.Tensor:
        params = dict(model.named_parameters(remove_duplicate=False))  # tied: all names
        sq: dict[int, torch.Tensor] = {}
        for leaf, size, name, dim, owner in plan:
            w = params[name]
            per_pos = w.pow(2).movedim(dim, 0).reshape(w.shape[dim], -1).sum(1)
            owner = owner.to(w.device)
            hit = owner >= 0
            acc = sq.setdefault(leaf, torch.zeros(size, dtype=w.dtype, device=w.device))
            sq[leaf] = acc.index_add(0, owner[hit], per_pos[hit])
        total = sum(v.clamp_min(1e-12).sqrt().sum() for v in sq.values())
        return strength * total
    return penalty


def with_penalty(loss_fn, *penalties: Penalty):
    """A Trainer loss_fn: the task loss plus each penalty of the model being trained."""
    def loss(model, x, y):
        base = model.module if hasattr(model, "module") else model  # unwrap DDP
        return loss_fn(model, x, y) + sum(p(base) for p in penalties)
    return loss
