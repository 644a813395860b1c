"""The second kind of space: per-layer pruning ratios of a trained model (the choice behind
AMC-style automated pruning), one gene per prunable channel group, candidates cut through
slimkit.pruning.prune — so they are physically smaller and keep the trained weights.

    space = prune_space(trained, torch.randn(1, 1, 8, 8), ratios=(0.0, 0.25, 0.5, 0.75))
    result = run_search(SearchConfig(space="prune", proxy=ProxyConfig(epochs=1), ...),
                        space=space)

Search calls pruning as an evaluator of candidates (the DESIGN's one allowed crossing: a
search technique evaluates candidates with other techniques); nothing here changes pruning.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from slimkit.errors import ConfigError
from slimkit.graph.deps import DependencyGraph
from slimkit.graph.modules import name_matches
from slimkit.pruning import PruneConfig, PruneRule, prune
from slimkit.search.space import Choice, Space

DEFAULT_RATIOS = (0.0, 0.25, 0.5, 0.75)


def prune_space(model: nn.Module, example_inputs: torch.Tensor | None = None,
                ratios: Sequence[float] = DEFAULT_RATIOS, importance: str = "l1",
                round_to: int = 1, skip: Sequence[str] = (),
                input_shape: Sequence[int] | None = None) -> Space:
    """One gene per prunable channel group of `model` (named after the group's first layer),
    choosing the fraction of its channels to remove. skip: glob patterns of layers kept whole.
    Give example_inputs (batch 1) or input_shape."""
    if example_inputs is None:
        if input_shape is None:
            raise ConfigError("prune_space needs example_inputs or input_shape")
        example_inputs = torch.randn(1, *input_shape)
    x = example_inputs[:1]
    ratios = tuple(float(r) for r in ratios)
    if any(not 0 <= r < 1 for r in ratios):
        raise ConfigError(f"prune_space ratios={ratios} must be fractions in [0, 1)")
    graph = DependencyGraph.build(model.eval(), x)
    genes, seen = [], set()
    for g in graph.groups():
        owners = [o for o in g.owners if o]
        if not owners or g.is_head or any(name_matches(p, o) for p in skip for o in owners):
            continue
        if owners[0] in seen:
            continue
        seen.add(owners[0])
        genes.append(Choice(owners[0], ratios))
    if not genes:
        raise ConfigError(f"{type(model).__name__} has no prunable channel group to search")

    def build(arch: dict) -> nn.Module:
        rules = tuple(PruneRule(name, ratio=r) for name, r in arch.items())
        cfg = PruneConfig(ratio=0.0, rules=rules, importance=importance, round_to=round_to)
        return prune(model, cfg, x)

    return Space(f"prune:{type(model).__name__}", tuple(genes), build, tuple(x.shape[1:]),
                 kind="pruning")
