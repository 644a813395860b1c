"""How each ATen op couples the dimensions of its inputs and outputs — one registry.

A rule gets the propagation context and the node, reads its inputs' dims (a list of space ids
per tensor), couples what the op couples, and returns the output's dims. Ops are matched by
overload-packet name ("conv2d", "add"), so every overload of an op shares its rule. An op with
no rule is the caller's problem: DependencyGraph raises naming it, or freezes around it.
"""

from __future__ import annotations

import math

import torch

from slimkit.graph.registry import arg, rule, shape
from slimkit.graph.rules_layers import conv_transposed

# ---- shape-preserving and broadcasting -----------------------------------------------------------
ELEMENTWISE = [
    "add", "sub", "rsub", "mul", "div", "true_divide", "relu", "relu6", "gelu", "silu", "sigmoid",
    "tanh", "hardswish", "hardsigmoid", "hardtanh", "leaky_relu", "elu", "selu", "celu", "mish",
    "softplus", "dropout", "alpha_dropout", "feature_dropout", "clone", "contiguous", "alias",
    "detach", "lift_fresh_copy", "neg", "abs", "exp", "log", "log1p", "sqrt", "rsqrt", "pow",
    "square", "clamp", "clamp_min", "clamp_max", "where", "masked_fill", "_to_copy", "to",
    "type_as", "erf", "sign", "reciprocal", "maximum", "minimum", "logical_not", "bitwise_not",
    "eq", "ne", "gt", "lt", "ge", "le", "floor", "ceil", "round", "copy", "fill", "zeros_like",
    "ones_like", "full_like", "empty_like", "native_dropout", "__and__", "__or__", "__xor__",
    "bitwise_and", "bitwise_or", "logical_and", "logical_or", "isnan", "isinf", "nan_to_num",
]


@rule(*ELEMENTWISE)
def broadcast(ctx, node):
    """Align dims from the right; every input dim of the output's (non-1) size is one space."""
    out = shape(node)
    tensors = [a for a in ctx.tensor_args(node) if ctx.dims(a) is not None]
    dims = []
    for k in range(1, len(out) + 1):
        same = [ctx.dims(a)[-k] for a in tensors
                if len(ctx.dims(a)) >= k and ctx.size(ctx.dims(a)[-k]) == out[-k]]
        if out[-k] == 1 or not same:
            dims.append(ctx.fixed(out[-k]))
            continue
        for s in same[1:]:
            ctx.spaces.union(same[0], s)
        dims.append(same[0])
    return dims[::-1] if not isinstance(node.meta["val"], tuple) else (dims[::-1], None)


# ---- layers with weights -------------------------------------------------------------------------
@rule("conv1d", "conv2d", "conv3d", "convolution")
def conv(ctx, node):
    x, w = ctx.dims(node.args[0]), ctx.dims(node.args[1])
    if node.target.__name__.startswith("convolution") and arg(node, 6, "transposed"):
        return conv_transposed(ctx, node, int(arg(node, 8, "groups", 1)))
    b = arg(node, 2, "bias")
    groups = int(arg(node, 8 if node.target.__name__.startswith("convolution") else 6,
                     "groups", 1))
    for d in w[2:]:
        ctx.spaces.freeze(d)  # kernel taps are not channels
    c_in = ctx.size(x[1])
    if groups == 1:
        ctx.spaces.union(x[1], w[1])
        cout = w[0]
    elif ctx.size(w[1]) == 1 and groups == c_in == ctx.size(w[0]):
        ctx.spaces.union(x[1], w[0])  # depthwise: channel c in is channel c out
        ctx.spaces.freeze(w[1])
        cout = w[0]
    else:  # grouped: prune the same positions in every group, keep the group count
        per_group = _groups_over_cat(ctx, x[1], groups) if ctx.spaces[x[1]].kind == "cat" \
            else None
        if per_group is not None:  # concat members straddle groups: align per position
            wp = ctx.spaces.refine(w[1], "cat", [ctx.size(p) for p in per_group], "group")
            for wd, pos in zip(wp, per_group, strict=True):
                ctx.spaces.union(wd, pos)
        else:
            g_in = ctx.spaces.refine(x[1], "prod", [groups, c_in // groups], "group")
            ctx.spaces.freeze(g_in[0])
            ctx.spaces.union(g_in[1], w[1])
        g_out = ctx.spaces.refine(w[0], "prod", [groups, ctx.size(w[0]) // groups], "group")
        ctx.spaces.freeze(g_out[0])
        cout = w[0]
    if b is not None:
        ctx.spaces.union(ctx.dims(b)[0], w[0])
    ctx.note_weight(node, node.args[1], out_dim=0)
    out = shape(node)
    return [x[0], cout] + [ctx.fixed(n) for n in out[2:]]


def _groups_over_cat(ctx, space: int, groups: int) -> list[int] | None:
    """A concat (e.g. 32 + 16 channels) feeding a conv with `groups` groups (of 12): pruning
    keeps the same positions in every group, so channel c of a member is position c mod 12.
    The positions are split where a member starts (here 12 → 8 + 4), each member into
    segments of those positions, and equal positions coupled. None if a member is not a
    plain leaf (then the caller keeps the input whole)."""
    parts = ctx.spaces[space].parts
    if any(ctx.spaces[p].kind != "leaf" for p in parts):
        return None
    g = ctx.size(space) // groups
    offsets = [0]
    for p in parts[:-1]:
        offsets.append(offsets[-1] + ctx.size(p))
    cuts = sorted({o % g for o in offsets} | {0})
    bounds = cuts + [g]
    positions = [ctx.spaces.new(b - a, label="group position")
                 for a, b in zip(cuts, bounds[1:], strict=True)]
    for p, o in zip(parts, offsets, strict=True):
        sizes, which, pos = [], [], o
        while pos < o + ctx.size(p):
            i = cuts.index(pos % g)
            sizes.append(bounds[i + 1] - bounds[i])
            which.append(i)
            pos += sizes[-1]
        segs = ctx.spaces.refine(p, "cat", sizes, "group") if len(sizes) > 1 else [p]
        for seg, i in zip(segs, which, strict=True):
            ctx.spaces.union(seg, positions[i])
    return positions


@rule("linear")
def linear(ctx, node):
    x, w = ctx.dims(node.args[0]), ctx.dims(node.args[1])
    ctx.spaces.union(x[-1], w[1])
    b = arg(node, 2, "bias")
    if b is not None:
        ctx.spaces.union(ctx.dims(b)[0], w[0])
    ctx.note_weight(node, node.args[1], out_dim=0)
    return x[:-1] + [w[0]]


@rule("embedding")
def embedding(ctx, node):
    w, idx = ctx.dims(node.args[0]), ctx.dims(node.args[1])
    ctx.spaces.freeze(w[0])  # the vocabulary
    ctx.note_weight(node, node.args[0], out_dim=1)
    return list(idx) + [w[1]]


@rule("mm", "bmm", "matmul")
def matmul(ctx, node):
    a, b = ctx.dims(node.args[0]), ctx.dims(node.args[1])
    if len(a) < 2 or len(b) < 2:
        return ctx.unknown(node)
    ctx.spaces.union(a[-1], b[-2])
    batch = []
    out = shape(node)
    for k in range(3, len(out) + 1):  # broadcast batch dims
        same = [d[-k] for d in (a, b) if len(d) >= k and ctx.size(d[-k]) == out[-k]]
        for s in same[1:]:
            ctx.spaces.union(same[0], s)
        batch.insert(0, same[0] if same and out[-k] > 1 else ctx.fixed(out[-k]))
    return batch + [a[-2], b[-1]]


@rule("addmm")
def addmm(ctx, node):
    bias, a, b = (ctx.dims(n) for n in node.args[:3])
    ctx.spaces.union(a[-1], b[-2])
    if len(bias) == 1:
        ctx.spaces.union(bias[0], b[-1])
    return [a[0], b[-1]]


@rule("scaled_dot_product_attention")
def sdpa(ctx, node):
    q, k, v = (ctx.dims(n) for n in node.args[:3])
    for i in range(len(q) - 2):  # batch and head dims
        ctx.spaces.union(q[i], k[i])
        ctx.spaces.union(q[i], v[i])
    ctx.spaces.union(q[-1], k[-1])  # q·kᵀ contracts the qk head dim
    ctx.spaces.union(k[-2], v[-2])  # keys and values share the sequence
    return q[:-1] + [v[-1]]


# ---- normalization -------------------------------------------------------------------------------
@rule("batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
      "native_batch_norm", "instance_norm")
def batch_norm(ctx, node):
    x = ctx.dims(node.args[0])
    for p in node.args[1:5]:
        if p is not None and ctx.dims(p) is not None:
            ctx.spaces.union(x[1], ctx.dims(p)[0])
    return _maybe_tuple(node, list(x))


@rule("layer_norm", "native_layer_norm", "rms_norm")
def layer_norm(ctx, node):
    x = ctx.dims(node.args[0])
    n = len(node.args[1])
    for p in (arg(node, 2, "weight"), arg(node, 3, "bias")):
        if p is not None:
            for dx, dp in zip(x[-n:], ctx.dims(p), strict=True):
                ctx.spaces.union(dx, dp)
    return _maybe_tuple(node, list(x))


@rule("group_norm", "native_group_norm")
def group_norm(ctx, node):
    x = ctx.dims(node.args[0])
    groups = int(node.args[1] if node.target.__name__.startswith("group_norm") else node.args[6])
    g = ctx.spaces.refine(x[1], "prod", [groups, ctx.size(x[1]) // groups], "group")
    ctx.spaces.freeze(g[0])
    wb = node.args[2:4] if node.target.__name__.startswith("group_norm") else node.args[1:3]
    for p in wb:
        if p is not None:
            ctx.spaces.union(ctx.dims(p)[0], x[1])
    return _maybe_tuple(node, list(x))


def _maybe_tuple(node, dims):
    val = node.meta["val"]
    return (dims, *[None] * (len(val) - 1)) if isinstance(val, tuple | list) else dims


# ---- pooling and reductions ----------------------------------------------------------------------
@rule("max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
      "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool2d",
      "max_pool2d_with_indices", "upsample_nearest2d", "upsample_bilinear2d", "pixel_shuffle")
def pool(ctx, node):
    """Batch and channel pass through; the spatial dims are new."""
    x = ctx.dims(node.args[0])
    val = node.meta["val"]
    out = list(val[0].shape if isinstance(val, tuple | list) else val.shape)
    if node.target.__name__.startswith("pixel_shuffle"):
        return ctx.unknown(node)
    lead = len(x) - (len(out) - 2) if len(out) >= 2 else 0
    dims = list(x[:2]) if lead == 2 else [ctx.fixed(int(n)) for n in out[:2]]
    dims += [ctx.fixed(int(n)) for n in out[2:]]
    return _maybe_tuple(node, dims)


@rule("mean", "sum", "amax", "amin", "var", "std", "max", "min", "logsumexp", "prod", "norm",
      "argmax", "argmin", "all", "any", "var_mean")
def reduce(ctx, node):
    x = ctx.dims(node.args[0])
    val = node.meta["val"]
    if isinstance(val, tuple | list):
        val = val[0]
    dim = arg(node, 1, "dim")
    if dim is None or (isinstance(dim, list | tuple) and len(dim) == 0) or not isinstance(
            dim, int | list | tuple):
        reduced = set(range(len(x)))
    else:
        reduced = {d % len(x) for d in ([dim] if isinstance(dim, int) else dim)}
    for d in reduced:
        ctx.spaces.freeze(x[d])  # a statistic over channels changes when channels go
    keep = len(val.shape) == len(x)
    dims = [ctx.fixed(1) if d in reduced else x[d] for d in range(len(x))
            if keep or d not in reduced]
    return _maybe_tuple(node, dims) if isinstance(node.meta["val"], tuple | list) else dims


@rule("linalg_vector_norm")
def vector_norm(ctx, node):
    x = ctx.dims(node.args[0])
    dim = arg(node, 2, "dim")
    reduced = set(range(len(x))) if dim is None else {
        d % len(x) for d in ([dim] if isinstance(dim, int) else dim)}
    for d in reduced:
        ctx.spaces.freeze(x[d])
    keep = bool(arg(node, 3, "keepdim", False))
    return [ctx.fixed(1) if d in reduced else x[d] for d in range(len(x))
            if keep or d not in reduced]


@rule("softmax", "_softmax", "log_softmax", "_log_softmax", "cumsum")
def softmax(ctx, node):
    x = list(ctx.dims(node.args[0]))
    ctx.spaces.freeze(x[int(node.args[1]) % len(x)])
    return x


# ---- concat, split, slicing ----------------------------------------------------------------------
@rule("cat", "concat", "concatenate")
def cat(ctx, node):
    parts = [ctx.dims(t) for t in node.args[0] if ctx.dims(t) is not None]
    parts = [p for p in parts if not (len(p) == 1 and ctx.size(p[0]) == 0)]
    d = int(arg(node, 1, "dim", 0)) % len(parts[0])
    for p in parts[1:]:
        for i in range(len(p)):
            if i != d:
                ctx.spaces.union(parts[0][i], p[i])
    out = list(parts[0])
    out[d] = ctx.spaces.compose("cat", [p[d] for p in parts])
    return out


@rule("stack")
def stack(ctx, node):
    parts = [ctx.dims(t) for t in node.args[0]]
    d = int(arg(node, 1, "dim", 0)) % (len(parts[0]) + 1)
    for p in parts[1:]:
        for a, b in zip(parts[0], p, strict=True):
            ctx.spaces.union(a, b)
    out = list(parts[0])
    out.insert(d, ctx.fixed(len(parts)))
    return out


@rule("split", "split_with_sizes", "chunk", "tensor_split", "unsafe_split", "unbind")
def split(ctx, node):
    x = ctx.dims(node.args[0])
    outs = [list(int(n) for n in v.shape) for v in node.meta["val"]]
    unbind = node.target.__name__.startswith("unbind")
    d = int(arg(node, 1, "dim", 0)) % len(x) if unbind else int(
        arg(node, 2, "dim", 0)) % len(x)
    if unbind:
        ctx.spaces.freeze(x[d])
        return [x[:d] + x[d + 1:] for _ in outs]
    sizes, sp = [o[d] for o in outs], ctx.spaces[x[d]]
    if sp.kind == "prod" and len(set(sizes)) == 1 and ctx.spaces[sp.parts[0]].frozen and \
            ctx.size(sp.parts[0]) % len(sizes) == 0:
        # equal chunks of a grouped output (groups × per-group): each chunk is a run of whole
        # groups with the same per-group channels, not a new cut of the channels
        lead = ctx.size(sp.parts[0]) // len(sizes)
        rest = ([ctx.fixed(lead)] if lead > 1 else []) + list(sp.parts[1:])
        return [x[:d] + [ctx.spaces.compose("prod", rest)] + x[d + 1:] for _ in outs]
    pieces = ctx.spaces.refine(x[d], "cat", sizes, "split")
    return [x[:d] + [p] + x[d + 1:] for p in pieces]


@rule("slice", "narrow")
def slice_(ctx, node):
    x = list(ctx.dims(node.args[0]))
    d = int(arg(node, 1, "dim", 0)) % len(x)
    n, out = ctx.size(x[d]), shape(node)[d]
    if out == n:
        return x
    name = node.target.__name__
    start = int(arg(node, 2, "start", 0) or 0)
    step = 1 if name.startswith("narrow") else int(arg(node, 4, "step", 1))
    start = start + n if start < 0 else min(start, n)
    if step != 1 or ctx.spaces[x[d]].frozen:
        ctx.spaces.freeze(x[d])
        x[d] = ctx.fixed(out)
        return x
    sizes = [s for s in (start, out, n - start - out) if s > 0]
    pieces = ctx.spaces.refine(x[d], "cat", sizes, "slice")
    x[d] = pieces[1 if start > 0 else 0]
    return x


@rule("select", "index_select", "gather", "index", "take")
def select(ctx, node):
    """Picking positions by index: keep the indexed dim whole."""
    x = list(ctx.dims(node.args[0]))
    name = node.target.__name__
    if name.startswith("select"):
        d = int(node.args[1]) % len(x)
        ctx.spaces.freeze(x[d])
        return x[:d] + x[d + 1:]
    if name.startswith(("index_select", "gather")):
        d = int(node.args[1]) % len(x)
        ctx.spaces.freeze(x[d])
        out = shape(node)
        x[d] = ctx.fixed(out[d])
        return x if len(out) == len(x) else ctx.unknown(node)
    return ctx.unknown(node)


# ---- layout: view, reshape, permute --------------------------------------------------------------
@rule("view", "reshape", "_unsafe_view", "flatten", "unflatten", "view_as", "reshape_as")
def reshape(ctx, node):
    x = ctx.dims(node.args[0])
    out = shape(node)
    ins = [(d, ctx.size(d)) for d in x if ctx.size(d) != 1]
    outs = [i for i, n in enumerate(out) if n != 1]
    dims: list[int | None] = [None] * len(out)
    i = j = 0
    while i < len(ins) or j < len(outs):
        gi, gj = [ins[i]], [outs[j]]
        i, j = i + 1, j + 1
        pi, pj = gi[0][1], out[gj[0]]
        while pi != pj:  # grow the smaller side until both cover the same elements
            if pi < pj:
                gi.append(ins[i])
                pi, i = pi * ins[i][1], i + 1
            else:
                gj.append(outs[j])
                pj, j = pj * out[outs[j]], j + 1
        if len(gi) == 1 and len(gj) == 1:
            dims[gj[0]] = gi[0][0]
        elif len(gj) == 1:  # merge: (C, H, W) → C·H·W
            dims[gj[0]] = ctx.spaces.compose("prod", [d for d, _ in gi])
        elif len(gi) == 1:  # split: E → (heads, head_dim)
            parts = ctx.spaces.refine(gi[0][0], "prod", [out[k] for k in gj], "view")
            ctx.note_split(node, parts)
            for k, p in zip(gj, parts, strict=True):
                dims[k] = p
        else:  # m:n regrouping, e.g. (B, E) → (B·H, D): align on common factors
            aligned = _align(ctx, node, [d for d, _ in gi], [out[k] for k in gj])
            if aligned is None:  # no common factoring: no channel survives recognisably
                for d, _ in gi:
                    ctx.spaces.freeze(d)
                aligned = [ctx.fixed(out[k]) for k in gj]
            for k, d in zip(gj, aligned, strict=True):
                dims[k] = d
    return [ctx.fixed(1) if d is None else d for d in dims]


def _align(ctx, node, ins: list[int], outs: list[int]) -> list[int] | None:
    """Spaces of the `outs` sizes when the row-major `ins` spaces regroup into them through
    common factors (each boundary of one side divides a dim of the other); None otherwise.
    (B, E) → (B·H, D): E is refined into (H, D), the first output is prod(B, H)."""
    pieces_in: list[list[int]] = [[] for _ in ins]  # factor sizes per input dim
    pieces_out: list[list[tuple[int, int]]] = [[] for _ in outs]  # (input dim, factor index)
    i = j = 0
    a, b = ctx.size(ins[0]), outs[0]
    while i < len(ins) and j < len(outs):
        f = min(a, b)
        if a % f or b % f:
            return None
        pieces_out[j].append((i, len(pieces_in[i])))
        pieces_in[i].append(f)
        a, b = a // f, b // f
        if a == 1:
            i += 1
            a = ctx.size(ins[i]) if i < len(ins) else 1
        if b == 1:
            j += 1
            b = outs[j] if j < len(outs) else 1
    if i < len(ins) or j < len(outs):
        return None
    parts = [ctx.spaces.refine(d, "prod", p, "view") if len(p) > 1 else [d]
             for d, p in zip(ins, pieces_in, strict=True)]
    for p in parts:
        if len(p) == 2:
            ctx.note_split(node, p)
    return [ctx.spaces.compose("prod", [parts[di][fi] for di, fi in po]) for po in pieces_out]


@rule("permute", "transpose", "t", "swapaxes", "movedim", "numpy_T")
def permute(ctx, node):
    x = list(ctx.dims(node.args[0]))
    name = node.target.__name__
    if name.startswith("permute"):
        return [x[int(p) % len(x)] for p in node.args[1]]
    if name.startswith(("t.", "numpy_T")) or name == "t":
        return x[::-1]
    if name.startswith("movedim"):
        return ctx.unknown(node)
    a, b = int(node.args[1]) % len(x), int(node.args[2]) % len(x)
    x[a], x[b] = x[b], x[a]
    return x


@rule("unsqueeze", "squeeze", "expand", "expand_as", "repeat", "broadcast_to")
def resize_ones(ctx, node):
    """Dims of size 1 appear, vanish or grow; the others keep their spaces in order."""
    x = ctx.dims(node.args[0])
    out = shape(node)
    name = node.target.__name__
    if name.startswith(("expand", "repeat", "broadcast_to")):
        lead = len(out) - len(x)
        dims = [ctx.fixed(n) for n in out[:lead]]
        for d, n in zip(x, out[lead:], strict=True):
            if ctx.size(d) == n:
                dims.append(d)
            else:
                ctx.spaces.freeze(d)
                dims.append(ctx.fixed(n))
        return dims
    kept = [d for d in x if ctx.size(d) != 1]
    dims, it = [], iter(kept)
    for n in out:
        dims.append(ctx.fixed(1) if n == 1 else next(it))
    return dims


# ---- no tensor inputs, or no coupling ------------------------------------------------------------
CREATION = ("arange", "zeros", "ones", "full", "empty", "scalar_tensor", "rand", "randn",
            "tensor", "new_zeros", "new_ones", "new_full", "new_empty", "eye", "linspace")


@rule(*CREATION)
def creation(ctx, node):
    return [ctx.fixed(n) for n in shape(node)]


IGNORED = {"_assert_tensor_metadata", "sym_size", "sym_numel", "sym_stride", "_assert_async",
           "sym_constrain_range_for_size", "_assert_scalar", "item", "local_scalar_dense"}


def product(xs) -> int:
    return math.prod(int(x) for x in xs)


def is_tensor_node(a) -> bool:
    return hasattr(a, "meta") and isinstance(a.meta.get("val"), torch.Tensor)
