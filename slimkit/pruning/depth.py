"""Depth pruning: whole residual blocks replaced by the identity.

At batch 1 on a CPU a block costs more than its MACs: each of its kernels has a fixed cost
(dispatch, layout reorders, a depthwise pass that no channel count makes cheap), which channel
pruning never removes. Measured (issue 16, OpenVINO int8, MobileNetV2 224×224, batch 1, AMD
EPYC): 78% of the MACs cut by channels ran 1.93× NNCF's int8; 5 of the 10 residual blocks
dropped and half the rest's MACs cut by channels ran 2.15×.

A block is a module that adds its first argument to what it computes — `x + f(x)` — and
returns one tensor of x's shape, so nn.Identity — or `Skip`, which gives back x and ignores
further arguments such as an attention mask — takes its place with every shape kept. The add
is found in the model's torch.export graph, exported once with the candidates' call
signatures kept so the graph names each one's first input: ResNet / MobileNetV2 blocks,
Hugging Face encoder layers.
Only the innermost such modules are blocks (a stage of blocks is not one block).

Importance of a block (lower goes first; with a MACs / params target, per MAC / param):
  l1 / l2   1 − cosine between the block's input and output on the example inputs (and data,
            when given): how much the block moves its input ("block influence")
  mask      the loss increase on `data` when the block is skipped (with `loss_fn`)
  random    a seeded random order
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.export.graph_signature import TensorArgument

from slimkit.batch import as_args, evaluating, inputs_of, observe, split
from slimkit.errors import ConfigError
from slimkit.graph import rules
from slimkit.graph.deps import DependencyGraph, export_program
from slimkit.graph.modules import name_matches
from slimkit.pruning.importance import task_loss
from slimkit.pruning.report import LayerReport, PruneReport
from slimkit.record import ModelRecord, Step, rebuilds

_ADDS = {torch.ops.aten.add.Tensor, torch.ops.aten.add_.Tensor, operator.add}


class Skip(nn.Module):
    """A dropped block: gives back its first input (the block computed x + f(x); f is gone).
    Further arguments (an attention mask, a cache) are accepted and ignored."""

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return x


def _same_shape_modules(model: nn.Module, example) -> dict[str, tuple[torch.Size, bool]]:
    """Modules with children whose first argument is a tensor and whose output is one tensor
    of its shape → (that shape, whether the tensor was the only argument)."""
    found: dict[str, tuple[torch.Size, bool]] = {}
    hooks = []
    for name, m in model.named_modules():
        if not name or not any(True for _ in m.children()):
            continue

        def hook(mod, args, kwargs, out, n=name):
            if (args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor)
                    and out.shape == args[0].shape):
                found[n] = (out.shape, len(args) == 1 and not kwargs)
        hooks.append(m.register_forward_hook(hook, with_kwargs=True))
    observe(model, [example], hooks)
    return found


def _stacks(node) -> set[str]:
    return {path for path, _ in (node.meta.get("nn_module_stack") or {}).values()}


def _first_inputs(model: nn.Module, example, names) -> tuple | None:
    """(program, {module: graph name of its first input}) from one export that keeps the
    candidates' call signatures; None when the exporter cannot keep them."""
    try:
        with evaluating(model, grad=True):
            ep = torch.export.export(model, as_args(example), strict=False,
                                     preserve_module_call_signature=tuple(sorted(names)))
    except Exception:  # noqa: BLE001 — any exporter failure: fall back to shapes
        return None
    first = {e.fqn: e.signature.inputs[0].name for e in ep.module_call_graph
             if e.signature is not None and e.signature.inputs
             and isinstance(e.signature.inputs[0], TensorArgument)}
    return ep, first


def residual_blocks(model: nn.Module, example) -> list[str]:
    """Names of the innermost modules whose forward is x + f(x) with f(x) of x's shape, x
    their first argument. The exporter names each candidate's first input; where it cannot,
    single-argument modules are judged by shape (an activation of the block's shape from
    outside it, added inside it)."""
    shaped = _same_shape_modules(model, example)
    if not shaped:
        return []
    kept = _first_inputs(model, example, shaped)
    if kept is None:
        shaped = {n: v for n, v in shaped.items() if v[1]}
        ep, first = export_program(model, example), {}
    else:
        ep, first = kept
    residual = set()
    for node in ep.graph.nodes:
        if node.op != "call_function" or node.target not in _ADDS:
            continue
        for block in _stacks(node) & shaped.keys():
            if any(_is_input(a, block, first, shaped[block][0], ep) for a in node.args):
                residual.add(block)
    return sorted(b for b in residual
                  if not any(o != b and o.startswith(f"{b}.") for o in residual))


def _is_input(a, block: str, first: dict, shape, ep) -> bool:
    if not isinstance(a, torch.fx.Node):
        return False
    if block in first:
        return a.name == first[block]
    return (a.op != "get_attr" and block not in _stacks(a) and _is_activation(a, ep)
            and _shape(a)[1:] == tuple(shape)[1:])


def _shape(node) -> tuple:
    val = node.meta.get("val")
    return tuple(val.shape) if isinstance(val, torch.Tensor) else ()


def _is_activation(node, ep) -> bool:
    if node.op != "placeholder":
        return True
    return node.name in ep.graph_signature.user_inputs


# ---- importance -------------------------------------------------------------------------------
class _Skipping:
    """Forward hooks that make the named modules return their input (nothing is changed)."""

    def __init__(self, model: nn.Module, names) -> None:
        modules = dict(model.named_modules())
        self.hooks = [modules[n].register_forward_hook(lambda m, a, o: a[0]) for n in names]

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for h in self.hooks:
            h.remove()


def influence(model: nn.Module, blocks: list[str], batches: list) -> torch.Tensor:
    """(len(blocks),) mean 1 − cosine between each block's input and output."""
    modules = dict(model.named_modules())
    sums = torch.zeros(len(blocks), dtype=torch.float64)

    def hook(i):
        def f(m, args, out):
            cos = F.cosine_similarity(args[0].flatten(1).float(), out.flatten(1).float())
            sums[i] += float((1 - cos).mean())
        return f
    hooks = [modules[b].register_forward_hook(hook(i)) for i, b in enumerate(blocks)]
    observe(model, batches, hooks)
    return sums / max(len(batches), 1)


def skip_losses(model: nn.Module, blocks: list[str], data, loss_fn: Callable | None
                ) -> torch.Tensor:
    """(len(blocks),) loss increase on `data` with each block skipped, one at a time."""
    if data is None:
        raise ConfigError("granularity='depth' with importance='mask' needs data=[(inputs, "
                          "targets), …] (and a loss_fn, default cross-entropy)")
    loss_fn = loss_fn or task_loss()
    batches = [split(b) for b in data]

    def loss() -> float:
        with torch.no_grad():
            return sum(float(loss_fn(model, x, y)) for x, y in batches)

    base = loss()
    out = torch.zeros(len(blocks), dtype=torch.float64)
    for i, b in enumerate(blocks):
        with _Skipping(model, [b]):
            out[i] = loss() - base
    return out


def block_scores(model: nn.Module, blocks: list[str], importance: str, example, data,
                 loss_fn, seed: int) -> torch.Tensor:
    with evaluating(model, grad=True):
        if importance == "mask":
            return skip_losses(model, blocks, data, loss_fn)
        if importance == "random":
            g = torch.Generator().manual_seed(seed)
            return torch.rand(len(blocks), generator=g, dtype=torch.float64)
        inputs = [example] + [inputs_of(b) for b in data or []]
        return influence(model, blocks, inputs)


# ---- choose and cut ---------------------------------------------------------------------------
def _choose(order: list[int], costs: list[int], total: int, cfg) -> list[int]:
    """Blocks to drop, in `order`: a share of them (ratio), or as many as it
    takes to remove the MACs / params target."""
    if cfg.ratio is not None:
        return order[:int(round(cfg.ratio * len(order)))]
    goal = (cfg.target_macs if cfg.target_macs is not None else cfg.target_params) * total
    chosen, removed = [], 0
    for i in order:
        if removed >= goal:
            break
        chosen.append(i)
        removed += costs[i]
    if removed < goal:
        what = "MACs" if cfg.target_macs is not None else "params"
        raise ConfigError(f"granularity='depth' cannot remove {goal / total:.0%} of the "
                          f"model's {what}: all {len(order)} residual blocks weigh "
                          f"{removed / total:.0%}; add a channel pruning step for the rest")
    return chosen


def _stand_in(block: nn.Module) -> nn.Module:
    """nn.Identity for a block whose forward takes one argument (torch.fx keeps torch.nn's own
    modules as leaves, so the quantization flows still see it by name); Skip otherwise."""
    params = list(inspect.signature(block.forward).parameters.values())
    if len(params) == 1 and params[0].kind == params[0].POSITIONAL_OR_KEYWORD:
        return nn.Identity()
    return Skip()


def drop_blocks(model: nn.Module, names: list[str]) -> nn.Module:
    """Replace the named modules of `model` (in place) by their stand-ins (_stand_in)."""
    modules = dict(model.named_modules())
    for n in names:
        if n not in modules:
            raise ConfigError(f"depth pruning: module '{n}' is not in {type(model).__name__}")
        parent, _, child = n.rpartition(".")
        modules[parent]._modules[child] = _stand_in(modules[n])
    return model


def prune_depth(model: nn.Module, pruned: nn.Module, cfg, example, data, loss_fn
                ) -> tuple[list[str], PruneReport]:
    """Choose the blocks of `model` to drop, drop them from `pruned` (its copy)."""
    with_ratio = [r for r in cfg.rules if r.ratio is not None]
    if with_ratio:
        raise ConfigError(f"granularity='depth' drops whole blocks: PruneRule('"
                          f"{with_ratio[0].pattern}') takes skip=True (keep), not a ratio")
    blocks = [b for b in residual_blocks(model, example)
              if not any(name_matches(r.pattern, b) for r in cfg.rules)]
    graph = DependencyGraph.build(model, example, "freeze")
    macs0, params0 = graph.macs(), graph.params()
    modules = dict(model.named_modules())
    macs = [sum(rules.product(graph.spaces[s].size for s in t) for m, _, t in graph.cost_terms
                if m == b or m.startswith(f"{b}.")) for b in blocks]
    params = [sum(p.numel() for p in modules[b].parameters()) for b in blocks]
    rep = PruneReport("depth", groups=len(blocks), macs_before=macs0, params_before=params0)
    if not blocks:
        rep.notes.append("no residual block (x + f(x) of x's shape) found: nothing dropped")
        rep.macs_after, rep.params_after = macs0, params0
        return [], rep
    scores = block_scores(model, blocks, cfg.importance, example, data, loss_fn, cfg.seed)
    costs = macs if cfg.target_params is None else params
    # a ratio counts blocks: least important first; a target counts MACs / params: least
    # importance per MAC / param first (a greedy knapsack), so cheap blocks do not fill it
    per = [1.0] * len(blocks) if cfg.ratio is not None else [max(c, 1) for c in costs]
    order = sorted(range(len(blocks)), key=lambda i: (float(scores[i]) / per[i], blocks[i]))
    chosen = sorted(_choose(order, costs, macs0 if cfg.target_params is None else params0, cfg))
    names = [blocks[i] for i in chosen]
    drop_blocks(pruned, names)
    for i in chosen:
        rep.layers.append(LayerReport(blocks[i], params[i], 0, macs[i], 0, "block removed"))
    rep.groups_pruned = len(chosen)
    rep.macs_after = macs0 - sum(macs[i] for i in chosen)
    rep.params_after = params0 - sum(params[i] for i in chosen)
    rep.notes.append(f"residual blocks in the order they go ({cfg.importance}): " +
                     ", ".join(f"{blocks[i]} {float(scores[i]):.3g}" for i in order))
    return names, rep


@rebuilds("drop_blocks")
def _rebuild(model: nn.Module, step: Step, rec: ModelRecord) -> nn.Module:
    return drop_blocks(model, step.config["blocks"])


__all__ = ["block_scores", "drop_blocks", "influence", "prune_depth", "residual_blocks",
           "skip_losses", "Skip"]
