"""The dependency graph: which parameter dims must be cut together, built from torch.export.

    graph = DependencyGraph.build(model, example_inputs)
    for g in graph.groups():            # one Group per prunable set of coupled channels
        print(g.details())              # conv1.weight[0] · bn1.weight[0] · conv2.weight[1] …

torch.export gives the ATen ops the model really runs (not autograd node names); each op's
rule in `registry.RULES` couples dims into shared spaces (`spaces.Spaces`). What no rule covers
raises `DependencyError` naming the op and module — or, with `unknown="freeze"`, keeps every
channel it touches. Leaves that end up unfrozen are the groups pruning may cut.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from slimkit.batch import as_args, evaluating
from slimkit.errors import SlimkitError, check_choice
from slimkit.graph import registry, rules, rules_layers
from slimkit.graph.modules import tensor_names
from slimkit.graph.spaces import Spaces


class DependencyError(SlimkitError):
    """The model cannot be traced, or uses an op whose channel coupling slimkit does not know."""


@dataclass(frozen=True)
class Member:
    name: str  # parameter or buffer FQN, e.g. "layer1.0.conv1.weight"
    dim: int
    module: str  # owning module path
    kind: str  # "param" | "buffer"


@dataclass
class Group:
    """A set of channels that must be removed together (one leaf space)."""

    leaf: int
    size: int
    members: list[Member]
    owners: list[str]  # modules whose output channels these are (weight dim 0 of conv/linear)
    is_head: bool = False  # heads of an attention block (from a view E → heads × head_dim)
    graph: DependencyGraph | None = field(default=None, repr=False)

    def details(self) -> str:
        lines = [f"group of {self.size} channels"
                 + (" (attention heads)" if self.is_head else "")
                 + f", produced by {', '.join(self.owners) or '(no layer)'}:"]
        for m in self.members:
            space = self.graph.param_dims[m.name][m.dim]
            n = self.graph.spaces[space].size
            how = "" if n == self.size else f"  ({n} positions: {n // self.size} per channel)"
            lines.append(f"  {m.name}[dim {m.dim}]{how}")
        return "\n".join(lines)


class _Context:
    """What a rule sees: input dims, fresh spaces, and where to report an unknown op."""

    def __init__(self, graph: DependencyGraph, unknown: str) -> None:
        self.g, self.spaces, self.unknown_mode = graph, graph.spaces, unknown
        self.env: dict = {}

    def dims(self, a):
        return self.env.get(a) if hasattr(a, "meta") else None

    def size(self, space: int) -> int:
        return self.spaces[space].size

    def fixed(self, n: int) -> int:
        return self.spaces.new(int(n), frozen=True)

    def tensor_args(self, node):
        flat = list(node.args) + list(node.kwargs.values())
        return [a for a in flat if rules.is_tensor_node(a)]

    def note_weight(self, node, weight, out_dim: int) -> None:
        name = self.g.placeholder_names.get(weight)
        if name is not None:
            self.g.weight_out_dims[name] = out_dim

    def add_cost(self, node, op: str, spaces: list[int]) -> None:
        """MACs of one product term of `node` (spaces multiplied), for rules that know them."""
        self.g.cost_terms.append((_module_of(node), op, list(spaces)))

    def note_split(self, node, parts: list[int]) -> None:
        """A view E → (…, heads, head_dim): the last two factors (qkv packs (3, H, D))."""
        if len(parts) >= 2:
            self.g.head_splits.append((_module_of(node), list(parts[-2:])))

    def unknown(self, node):
        op = str(node.target)
        where = _module_of(node)
        ins = [d for a in self.tensor_args(node) for d in (self.dims(a) or ())]
        if all(self.spaces[d].frozen for d in ins):
            # every dim it reads is already fixed (a mask, an index, a constant): nothing
            # prunable passes through it, so nothing is lost by not knowing its coupling
            return _fixed_like(self, node.meta.get("val"))
        layers = sorted({self.spaces[d].label.rsplit("[", 1)[0] for d in ins
                         if self.spaces[d].label})
        if self.unknown_mode == "error":
            raise DependencyError(
                f"op {op} (node {node.name}) in module '{where or '(top level)'}' is not in "
                f"slimkit's dependency rules, so its channel coupling is unknown (it touches "
                f"the channels of {', '.join(layers) or 'no layer'}); pass "
                f"unknown_ops='freeze' to keep the channels it touches")
        self.g.frozen_ops.append(f"{op} (node {node.name}) in '{where}', freezing the channels "
                                 f"of {', '.join(layers) or 'no layer'}")
        for a in self.tensor_args(node):
            for d in self.dims(a) or ():
                self.spaces.freeze(d)
        return _fixed_like(self, node.meta.get("val"))


def _fixed_like(ctx: _Context, val):
    if isinstance(val, torch.Tensor):
        return [ctx.fixed(n) for n in val.shape]
    if isinstance(val, tuple | list):
        return tuple(_fixed_like(ctx, v) for v in val)
    return None


def _module_of(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""


class DependencyGraph:
    def __init__(self) -> None:
        self.spaces = Spaces()
        self.param_dims: dict[str, list[int]] = {}  # FQN → space per dim
        self.kinds: dict[str, str] = {}
        self.placeholder_names: dict = {}
        self.weight_out_dims: dict[str, int] = {}  # conv/linear weight FQN → its output dim
        self.head_splits: list[tuple[str, list[int]]] = []
        self.cost_terms: list[tuple[str, str, list[int]]] = []  # (module, op, spaces)
        self.frozen_ops: list[str] = []
        self.aliases: dict[str, str] = {}  # a tied tensor's other names → the first one
        self._alias_of: dict[str, str] = {}  # each name of a tied tensor → one key
        self._tied: dict[str, tuple[str, list[int]]] = {}  # key → (first name seen, dims)
        self.node_dims: dict[str, tuple[str, list[int]]] = {}  # op node → (module, dims)
        self.build_seconds = 0.0

    # ---- building -------------------------------------------------------------------------------
    @classmethod
    def build(cls, model: nn.Module, example_inputs: Sequence | torch.Tensor,
              unknown: str = "error") -> DependencyGraph:
        check_choice("unknown_ops", unknown, {"error", "freeze"})
        t0 = time.perf_counter()
        ep = export_program(model, example_inputs)
        g = cls()
        ctx = _Context(g, unknown)
        sig = ep.graph_signature
        owned = {**{k: ("param", v) for k, v in sig.inputs_to_parameters.items()},
                 **{k: ("buffer", v) for k, v in sig.inputs_to_buffers.items()}}
        g._alias_of = _aliases(model)
        for node in ep.graph.nodes:
            if node.op == "placeholder":
                g._placeholder(ctx, node, owned.get(node.name))
            elif node.op == "call_function":
                ctx.env[node] = g._call(ctx, node)
                if isinstance(ctx.env[node], list) and isinstance(node.meta.get("val"),
                                                                  torch.Tensor):
                    g.node_dims[node.name] = (_module_of(node), ctx.env[node])
            elif node.op == "output":
                for out in _flat(node.args):
                    for d in ctx.dims(out) or ():
                        g.spaces.freeze(d)  # the model's output shape is the contract
        g._one_head_dim_per_module()
        for name, m in model.named_modules():
            fn = rules_layers.MODULE_RULES.get(type(m))
            if fn is not None:
                fn(g, name, m)
        g.build_seconds = time.perf_counter() - t0
        return g

    def _placeholder(self, ctx: _Context, node, owned) -> None:
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            return
        if owned is None:  # a user input or a lifted constant: its shape is fixed
            ctx.env[node] = [ctx.fixed(n) for n in val.shape]
            return
        kind, name = owned
        tie = self._alias_of.get(name)
        if tie in self._tied:  # a tied tensor, lifted once per name: one set of spaces
            first, dims = self._tied[tie]
            self.aliases[name] = first
        else:
            dims = [self.spaces.new(n, label=f"{name}[{d}]") for d, n in enumerate(val.shape)]
            if tie is not None:
                self._tied[tie] = (name, dims)
        ctx.env[node] = dims
        self.param_dims[name], self.kinds[name] = dims, kind
        self.placeholder_names[node] = name

    def _call(self, ctx: _Context, node):
        target = node.target
        if target.__module__ == "_operator" and target.__name__ == "getitem":
            parent = ctx.env.get(node.args[0])
            return parent[node.args[1]] if isinstance(parent, tuple | list) else None
        packet = getattr(getattr(target, "_overloadpacket", None), "__name__", None)
        packet = packet or getattr(target, "__name__", str(target))
        if packet in rules.IGNORED:
            return None
        rule = registry.RULES.get(packet.rstrip("_")) or registry.RULES.get(packet)
        if rule is None:
            return ctx.unknown(node)
        out = rule(ctx, node)
        self._cost(ctx, node, packet, out)
        return out

    def _cost(self, ctx: _Context, node, packet: str, out) -> None:
        """MACs of an op as a product of spaces, so they can be re-counted after any cut."""
        if not isinstance(out, list):
            return
        transposed = packet.startswith("conv_transpose") or (
            packet == "convolution" and registry.arg(node, 6, "transposed"))
        if transposed:  # every input position × (C_out / groups) × kernel taps
            x, w = ctx.dims(node.args[0]), ctx.dims(node.args[1])
            self.cost_terms.append((_module_of(node), packet, list(x) + list(w[1:])))
        elif packet in ("conv1d", "conv2d", "conv3d", "convolution", "linear"):
            w = ctx.dims(node.args[1])
            self.cost_terms.append((_module_of(node), packet, list(out) + list(w[1:])))
        elif packet in ("mm", "bmm", "matmul", "addmm"):
            a = ctx.dims(node.args[1 if packet == "addmm" else 0])
            self.cost_terms.append((_module_of(node), packet, list(out) + [a[-1]]))
        elif packet == "scaled_dot_product_attention":
            q, k, v = (ctx.dims(n) for n in node.args[:3])
            self.cost_terms.append((_module_of(node), packet, list(q) + [k[-2]]))  # q·kᵀ
            self.cost_terms.append((_module_of(node), packet, list(q[:-1]) + [k[-2], v[-1]]))

    def _one_head_dim_per_module(self) -> None:
        """An attention module views q, k and v into heads with one attribute pair
        (num_heads, head_dim): splits of equal sizes in one module share their head count
        and head size — else a cut would give v a head size the attribute cannot say."""
        first: dict[tuple, list[int]] = {}
        for path, (h, d) in self.head_splits:
            key = (path, self.spaces[h].size, self.spaces[d].size)
            if key in first:
                self.spaces.union(first[key][0], h)
                self.spaces.union(first[key][1], d)
            else:
                first[key] = [h, d]

    # ---- reading --------------------------------------------------------------------------------
    def groups(self) -> list[Group]:
        """Every unfrozen leaf that some parameter carries, in graph order."""
        members: dict[int, list[Member]] = {}
        for name, dims in self.param_dims.items():
            module = name.rsplit(".", 1)[0] if "." in name else ""
            for d, space in enumerate(dims):
                for leaf in dict.fromkeys(self.spaces.leaves(space)):
                    if not self.spaces[leaf].frozen:
                        members.setdefault(leaf, []).append(
                            Member(name, d, module, self.kinds[name]))
        heads = {self.spaces.find(parts[0]) for _, parts in self.head_splits}
        out = []
        for leaf, ms in members.items():
            if not any(m.kind == "param" for m in ms):
                continue
            owners = [m.module for m in ms if self.weight_out_dims.get(m.name) == m.dim]
            out.append(Group(leaf, self.spaces[leaf].size, ms, list(dict.fromkeys(owners)),
                             leaf in heads, self))
        return out

    def shape_mismatch(self, model: nn.Module, example_inputs, kept: dict[int, int]):
        """Re-trace the cut `model`; the module of the first op whose output shape differs
        from what the cut predicts (a reshape that silently regrouped channels), or None."""
        ep = export_program(model, example_inputs)
        for node in ep.graph.nodes:
            if node.op != "call_function" or node.name not in self.node_dims:
                continue
            if _packet(node) in rules.CREATION:
                continue  # made from the module's attributes (RNN's zero state): they follow
            module, dims = self.node_dims[node.name]
            want = [self.spaces.size_after(d, kept) for d in dims]
            val = node.meta.get("val")
            if isinstance(val, torch.Tensor) and list(val.shape) != want:
                return module
        return None

    def macs(self, kept: dict[int, int] | None = None) -> int:
        kept = kept or {}
        return sum(rules.product(self.spaces.size_after(s, kept) for s in term)
                   for _, _, term in self.cost_terms)

    def params(self, kept: dict[int, int] | None = None) -> int:
        kept = kept or {}
        return sum(rules.product(self.spaces.size_after(s, kept) for s in dims)
                   for name, dims in self.param_dims.items()
                   if self.kinds[name] == "param" and name not in self.aliases)


def _aliases(model: nn.Module) -> dict[str, str]:
    """Every name of a tensor held under several (tied weights) → the tensor's first name."""
    return {n: ns[0] for ns in tensor_names(model).values() if len(ns) > 1 for n in ns}


def _packet(node) -> str:
    t = node.target
    return getattr(getattr(t, "_overloadpacket", None), "__name__", None) or getattr(
        t, "__name__", str(t))


def _flat(x):
    if isinstance(x, tuple | list):
        for v in x:
            yield from _flat(v)
    elif isinstance(x, dict):
        for v in x.values():
            yield from _flat(v)
    else:
        yield x


def export_program(model: nn.Module, example_inputs):
    """torch.export in eval mode (BN uses running stats; dropout is identity), mode restored."""
    args = as_args(example_inputs)
    try:
        with evaluating(model, grad=True):
            return torch.export.export(model, args, strict=False)
    except Exception as e:  # noqa: BLE001 — export raises many kinds; report one clear error
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DependencyError(
            f"torch.export cannot trace {type(model).__name__}: {type(e).__name__}: {first} "
            f"(data-dependent Python control flow on tensor values cannot be pruned "
            f"structurally; rewrite it with torch.cond or prune the submodules separately)"
        ) from e
