"""torch.fx tracing with slimkit's quantized modules kept as leaves."""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from slimkit.errors import SlimkitError


class TraceError(SlimkitError):
    """The model cannot be traced symbolically (data-dependent Python control flow, …)."""


class _Tracer(fx.Tracer):
    def __init__(self, leaf_types: tuple[type, ...]) -> None:
        super().__init__()
        self.leaf_types = leaf_types

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, self.leaf_types) or super().is_leaf_module(m, qualname)


def symbolic_trace(model: nn.Module, leaf_types: tuple[type, ...] = ()) -> fx.GraphModule:
    try:
        graph = _Tracer(leaf_types).trace(model)
    except Exception as e:  # noqa: BLE001 — fx raises many kinds; report one clear error
        raise TraceError(f"cannot trace {type(model).__name__} with torch.fx: "
                         f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    gm = fx.GraphModule(model, graph, type(model).__name__)
    gm.meta["slimkit_traced_from"] = type(model).__qualname__
    return gm


_ADD_TARGETS = {operator.add, operator.iadd, torch.add}
_POOL_FUNCS = {F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.avg_pool1d, F.avg_pool2d,
               torch.mean}
_POOL_MODULES = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AvgPool1d, nn.AvgPool2d)


def average_pools(gm: fx.GraphModule) -> list[fx.Node]:
    """Average-pooling nodes (functional, method or module) whose input is a traced value."""
    out = []
    for n in gm.graph.nodes:
        is_pool = (n.op == "call_function" and n.target in _POOL_FUNCS) or (
            n.op == "call_method" and n.target == "mean") or (
            n.op == "call_module" and isinstance(gm.get_submodule(n.target), _POOL_MODULES))
        if is_pool and n.args and isinstance(n.args[0], fx.Node):
            out.append(n)
    return out


def tensor_adds(gm: fx.GraphModule) -> list[fx.Node]:
    """Nodes adding two traced values (residual joins), not `x + 1` or shape arithmetic."""
    out = []
    for n in gm.graph.nodes:
        is_add = (n.op == "call_function" and n.target in _ADD_TARGETS) or (
            n.op == "call_method" and n.target in ("add", "add_"))
        tensors = len(n.args) >= 2 and all(isinstance(a, fx.Node) for a in n.args[:2])
        if is_add and tensors and not any(_is_shape_value(a) for a in n.args[:2]):
            out.append(n)
    return out


def _is_shape_value(n: fx.Node) -> bool:
    return (n.op == "call_method" and n.target in ("size", "dim")) or (
        n.op == "call_function" and n.target in (getattr, len, operator.getitem)
        and n.args and isinstance(n.args[0], fx.Node) and _is_shape_value(n.args[0]))
