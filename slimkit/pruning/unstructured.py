"""Unstructured and N:M sparsity: masks on conv / linear weights (same shapes, zeros inside).

Masks live in the model's record (`record_of(model).masks`, FQN → bool tensor); `KeepMasks`
(schedule.py) re-applies them after each optimizer step so fine-tuning keeps the zeros.
`slimkit.sparse` turns such weights into CSR / BSR kernels where that is faster.
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.errors import ConfigError
from slimkit.record import record_of

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def weight_scores(w: torch.Tensor, kind: str, grad: torch.Tensor | None, seed: int):
    if kind == "random":
        # drawn on the CPU (the seeded generator lives there), then placed beside the weight
        return torch.rand(w.shape, generator=torch.Generator().manual_seed(seed)).to(w.device)
    if kind == "taylor":
        return (w * grad).abs()
    if kind in ("l1", "l2"):
        return w.abs()
    raise ConfigError(f"importance='{kind}' does not rank single weights; use l1, l2, taylor "
                      f"or random with granularity='unstructured'/'nm'")


def magnitude_masks(scores: dict[str, torch.Tensor], ratios: dict[str, float],
                    scope: str) -> dict[str, torch.Tensor]:
    """Keep the largest scores: per layer (uniform) or under one global threshold."""
    if scope == "global":
        flat = torch.cat([s.flatten() for s in scores.values()])
        ratio = next(iter(ratios.values()))
        k = int(round(ratio * flat.numel()))
        if k == 0:
            return {n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}
        tau = flat.kthvalue(k).values
        return {n: s > tau for n, s in scores.items()}
    masks = {}
    for n, s in scores.items():
        k = int(round(ratios[n] * s.numel()))
        if k == 0:
            masks[n] = torch.ones_like(s, dtype=torch.bool)
            continue
        order = s.flatten().argsort()
        m = torch.ones(s.numel(), dtype=torch.bool, device=s.device)
        m[order[:k]] = False
        masks[n] = m.view_as(s)
    return masks


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep the n largest of every m consecutive weights along the input dim (2:4: n=2, m=4)."""
    rows = scores.reshape(scores.shape[0], -1)  # (out, in·k·k)
    if rows.shape[1] % m:
        raise ConfigError(f"N:M needs the input size {rows.shape[1]} to divide by m={m}")
    blocks = rows.reshape(rows.shape[0], -1, m)
    top = blocks.topk(n, dim=-1).indices
    mask = torch.zeros_like(blocks, dtype=torch.bool).scatter_(-1, top, True)
    return mask.reshape(scores.shape)


def block_divides(scores: torch.Tensor, block: tuple[int, int]) -> bool:
    rows = scores.reshape(scores.shape[0], -1)
    return rows.shape[0] % block[0] == 0 and rows.shape[1] % block[1] == 0


def block_scores(scores: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """(out / bh, in·k·k / bw): each tile's summed score — a tile is kept or zeroed whole."""
    rows = scores.reshape(scores.shape[0], -1)
    (o, i), (bh, bw) = rows.shape, block
    return rows.reshape(o // bh, bh, i // bw, bw).sum((1, 3))


def expand_blocks(tiles: torch.Tensor, block: tuple[int, int], shape) -> torch.Tensor:
    """A tile mask back to the weight's shape."""
    return tiles.repeat_interleave(block[0], 0).repeat_interleave(block[1], 1).reshape(shape)


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            params[name].mul_(mask)
    record_of(model).masks.update(masks)


def sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of exact zeros in each conv / linear weight."""
    return {f"{n}.weight": float((m.weight == 0).float().mean())
            for n, m in model.named_modules() if isinstance(m, PRUNABLE)}
