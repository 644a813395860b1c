"""Rules for the layers with more structure than one weight: transposed convolutions,
recurrent layers (LSTM / GRU gates), and module constraints (what a module's Python forward
ties that its ATen ops do not show, e.g. nn.MultiheadAttention). Registered into the same
registries as rules.py (imported by deps.py)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from slimkit.graph.registry import arg, rule, shape


@rule("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def conv_transpose(ctx, node):
    return conv_transposed(ctx, node, int(arg(node, 6, "groups", 1)))


def conv_transposed(ctx, node, groups: int):
    """Weight (C_in, C_out / groups, k…): input channels on dim 0, output channels on dim 1
    (per group: the same positions are cut in every group, the group count stays)."""
    x, w = ctx.dims(node.args[0]), ctx.dims(node.args[1])
    for d in w[2:]:
        ctx.spaces.freeze(d)  # kernel taps are not channels
    if groups == 1:
        ctx.spaces.union(x[1], w[0])
        cout = w[1]
    else:
        c_in, per_out = ctx.size(x[1]), ctx.size(w[1])
        g_in = ctx.spaces.refine(x[1], "prod", [groups, c_in // groups], "group")
        ctx.spaces.freeze(g_in[0])
        g_w = ctx.spaces.refine(w[0], "prod", [groups, c_in // groups], "group")
        ctx.spaces.freeze(g_w[0])
        ctx.spaces.union(g_in[1], g_w[1])
        # the output channels are (groups × per_out), with w[1] the per-group part
        cout = ctx.spaces.compose("prod", [ctx.fixed(groups), w[1]]) if per_out > 1 else \
            ctx.fixed(groups * per_out)
    b = arg(node, 2, "bias")
    if b is not None:
        if groups == 1:
            ctx.spaces.union(ctx.dims(b)[0], w[1])
        else:
            ctx.spaces.union(ctx.dims(b)[0], cout)
    ctx.note_weight(node, node.args[1], out_dim=1)
    return [x[0], cout] + [ctx.fixed(n) for n in shape(node)[2:]]


@rule("lstm", "gru")
def recurrent(ctx, node):
    """Hidden units pruned consistently: every gate block of every layer and direction cuts
    the same units (one space H, the layers' shared hidden_size); a bidirectional output is
    cat(H, H); the next layer's inputs follow. proj_size and unbatched input: frozen."""
    lstm = node.target.__name__.startswith("lstm")
    x, hx, params = ctx.dims(node.args[0]), node.args[1], node.args[2]
    has_b, layers, bidir, batch_first = (bool(node.args[3]), int(node.args[4]),
                                         bool(node.args[7]), bool(node.args[8]))
    dirs, per = 1 + bidir, 2 + 2 * has_b
    if len(x) != 3 or len(params) != layers * dirs * per:
        return ctx.unknown(node)  # unbatched input, or proj_size (an extra weight per layer)
    gates = 4 if lstm else 3
    h = ctx.size(ctx.dims(params[1])[1])
    hidden, inp = None, x[-1]
    for i in range(layers * dirs):
        ws = [ctx.dims(p) for p in params[i * per:(i + 1) * per]]
        for k, w in enumerate(ws):
            rows = ctx.spaces.refine(w[0], "prod", [gates, h], "gate")
            ctx.spaces.freeze(rows[0])  # the gate index is not a unit
            hidden = hidden if hidden is not None else rows[1]
            ctx.spaces.union(hidden, rows[1])
            if k == 0:
                ctx.spaces.union(w[1], inp)
            elif k == 1:
                ctx.spaces.union(w[1], hidden)
            ctx.note_weight(node, params[i * per + k], out_dim=0)
        for w in ws[:2]:
            ctx.add_cost(node, "recurrent", [x[0], x[1], w[0], w[1]])
        if i % dirs == dirs - 1:
            inp = ctx.spaces.compose("cat", [hidden] * dirs)
    batch = x[0] if batch_first else x[1]
    states = hx if isinstance(hx, list | tuple) else [hx]
    for t in states:
        if ctx.dims(t) is not None and not _created(t):
            ctx.spaces.union(ctx.dims(t)[-1], hidden)
    state = [ctx.fixed(layers * dirs), batch, hidden]
    return (list(x[:2]) + [inp], state, list(state)) if lstm else (list(x[:2]) + [inp], state)


def _created(t) -> bool:
    """A tensor made inside forward from constants (RNN's zero initial state): its shape
    follows the module's attributes, so it does not pin the units."""
    name = getattr(getattr(t, "target", None), "__name__", "")
    return name.split(".")[0] in ("zeros", "ones", "full", "empty", "zeros_like")


# ---- module constraints: what a module's Python forward ties that its ATen ops do not ----------
MODULE_RULES: dict[type, Callable] = {}


def module_rule(*types):
    def register(fn):
        for t in types:
            MODULE_RULES[t] = fn
        return fn
    return register


@module_rule(torch.nn.MultiheadAttention)
def _mha(graph, name: str, m) -> None:
    """nn.MultiheadAttention unflattens its packed projection as (3, E) with E the *input*
    width, and checks embed_dim == num_heads · head_dim: its inner width is the embedding
    width. Pruning a head therefore cuts the embedding (residual) channels it carries."""
    dims = graph.param_dims.get(f"{name + '.' if name else ''}in_proj_weight")
    if dims is None:
        return
    rows = graph.spaces[dims[0]]
    if rows.kind == "prod" and len(rows.parts) == 2:
        graph.spaces.union(rows.parts[1], dims[1])
    else:
        graph.spaces.freeze(dims[0])


