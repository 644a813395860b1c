"""`slimkit inspect MODEL`: what slimkit sees in a model before compressing it."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from slimkit.artifact import load
from slimkit.graph.deps import DependencyError, DependencyGraph
from slimkit.pipeline.context import count_params
from slimkit.pipeline.recipe import ModelSpec, RecipeError
from slimkit.pipeline.runner import build
from slimkit.pipeline.sources import build_model
from slimkit.quant.modules import QUANT_MODULES
from slimkit.record import describe


def _build(spec: str, shape: str | None) -> tuple[nn.Module, torch.Tensor | None]:
    p = Path(spec)
    if p.is_dir() and (p / "manifest.json").is_file():
        model = load(p)
    elif p.suffix in (".yaml", ".yml") and p.is_file():
        src = build(p)
        return src.model, src.data.example[:1] if isinstance(
            src.data.example, torch.Tensor) else None
    else:
        tv = spec.partition(":")[2] if spec.startswith("torchvision:") else None
        model = build_model(ModelSpec(torchvision=tv) if tv else ModelSpec(factory=spec))
    x = None
    if shape:
        try:
            x = torch.randn(1, *(int(d) for d in shape.split(",")))
        except ValueError as e:
            raise RecipeError(f"--shape {shape!r}: comma-separated ints, e.g. 3,224,224") from e
    return model.eval(), x


def inspect_model(spec: str, shape: str | None = None) -> str:
    model, x = _build(spec, shape)
    lines = [f"{type(model).__name__}: {count_params(model):,} params"]
    quantizable = [(n, type(m).__name__) for n, m in model.named_modules()
                   if type(m) in QUANT_MODULES]
    lines.append(f"quantizable layers ({len(quantizable)}): " + ", ".join(
        f"{n} ({t})" for n, t in quantizable[:40]) + (" …" if len(quantizable) > 40 else ""))
    if x is None:
        lines.append("MACs and prunable groups: pass --shape (the per-sample input shape)")
        return "\n".join(lines + [describe(model)])
    try:
        g = DependencyGraph.build(model, x, "freeze")
    except DependencyError as e:
        lines.append(f"structured pruning: not traceable ({e})")
        return "\n".join(lines)
    lines.append(f"MACs at batch 1: {g.macs():,}")
    groups = g.groups()
    lines.append(f"prunable channel groups ({len(groups)}):")
    for grp in groups[:30]:
        owners = ", ".join(grp.owners) or "(no layer)"
        lines.append(f"  {grp.size:>5} channels{' (heads)' if grp.is_head else ''}: {owners}")
    if g.frozen_ops:
        lines.append("kept whole around ops without rules: " + "; ".join(g.frozen_ops[:10]))
    lines.append(describe(model))
    return "\n".join(lines)
