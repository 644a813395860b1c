"""Structured surgery: slice every coupled tensor, then fix the modules' size attributes.

The dependency graph says, for each parameter and buffer dim, which positions survive; this file
cuts them and makes the module attributes agree (in/out channels, groups, num_features,
normalized_shape, num_heads, head_dim), so the result is an ordinary module that trains,
exports, and reloads. Every change goes into the model's record (`record_of(model).arch`), and
`apply_arch` replays it on a fresh model of the same class (what `sk.load` does).
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.errors import SlimkitError
from slimkit.graph.deps import DependencyGraph
from slimkit.graph.modules import tensor_names
from slimkit.record import record_of

HEAD_ATTRS = ("num_heads", "n_heads", "n_head", "num_attention_heads", "heads")
HEAD_DIM_ATTRS = ("head_dim", "attention_head_size", "d_head", "head_size")
ALL_HEAD_ATTRS = ("all_head_size", "inner_dim", "split_size", "n_embd")  # heads × head_dim


def cut(model: nn.Module, graph: DependencyGraph, keep: dict[int, torch.Tensor]) -> dict:
    """Slice `model` in place so each leaf keeps the channels in `keep`; returns the record."""
    slots = _slots(model)
    tensors = {**dict(model.named_buffers(remove_duplicate=False)),
               **dict(model.named_parameters(remove_duplicate=False))}
    shapes, attrs = {}, {}
    for name, dims in graph.param_dims.items():
        t = tensors[name]
        new = t.detach()
        for d, space in enumerate(dims):
            idx = graph.spaces.keep_index(space, keep)
            if len(idx) != new.shape[d]:
                new = new.index_select(d, idx.to(new.device))
        if new.shape != t.shape:
            _assign(slots[name], t, new.contiguous().clone())
            shapes[name] = list(new.shape)
    modules = dict(model.named_modules())
    old_conv = {n: (m.in_channels, m.groups) for n, m in modules.items()
                if isinstance(m, nn.modules.conv._ConvNd)}
    for path, m in modules.items():
        changed = _fix_attrs(m, old_conv.get(path))
        if changed:
            attrs[path] = changed
    for path, (h, d) in _head_changes(graph, keep):
        changed = _fix_heads(modules.get(path), h, d)
        if changed:
            attrs.setdefault(path, {}).update(changed)
    record = record_of(model).arch
    record["shapes"].update(shapes)
    for path, a in attrs.items():
        record["attrs"].setdefault(path, {}).update(a)
    return record


def apply_arch(model: nn.Module, arch: dict) -> nn.Module:
    """Resize a fresh, unpruned model in place to the recorded shapes and attributes (values
    are placeholders until weights are loaded)."""
    modules = dict(model.named_modules())
    slots = _slots(model)  # a tied tensor is resized in every module that holds it
    for name, shape in arch["shapes"].items():
        owner, _, attr = name.rpartition(".")
        m = modules.get(owner)
        if m is None or not hasattr(m, attr) or name not in slots:
            raise SlimkitError(f"{type(model).__name__} has no tensor '{name}': rebuild the "
                               "pruned model from the class (and arguments) it was pruned from")
        old = getattr(m, attr)
        _assign(slots[name], old, torch.empty(shape, dtype=old.dtype, device=old.device))
    for owner, attrs in arch["attrs"].items():
        if owner not in modules:
            raise SlimkitError(f"{type(model).__name__} has no module '{owner}' to resize")
        for k, v in attrs.items():
            setattr(modules[owner], k, tuple(v) if isinstance(v, list) else v)
    for m in modules.values():
        if isinstance(m, nn.RNNBase):
            m._init_flat_weights()  # its forward reads this list of the (new) tensors
    return model


def _slots(model: nn.Module) -> dict[str, list[tuple[nn.Module, str]]]:
    """FQN → every (module, attribute) holding that tensor (tied weights are cut together)."""
    def slot(name: str) -> tuple[nn.Module, str]:
        owner, _, attr = name.rpartition(".")
        return model.get_submodule(owner), attr

    return {n: [slot(x) for x in ns] for ns in tensor_names(model).values() for n in ns}


def _assign(slots, old: torch.Tensor, new: torch.Tensor) -> None:
    value = nn.Parameter(new, requires_grad=old.requires_grad) if isinstance(
        old, nn.Parameter) else new
    for m, pname in slots:
        if pname in m._parameters:
            m._parameters[pname] = value
        else:
            m._buffers[pname] = value


def _is_transposed_linear(m: nn.Module) -> bool:
    """transformers' `Conv1D` (GPT-2, GPT): a Linear whose weight is stored (in, out), sized by
    `nx` / `nf` — matched by shape, not imported (transformers is optional)."""
    w = getattr(m, "weight", None)
    return (type(m).__name__ == "Conv1D" and isinstance(w, torch.Tensor) and w.dim() == 2
            and isinstance(getattr(m, "nf", None), int) and isinstance(getattr(m, "nx", None), int))


def _fix_attrs(m: nn.Module, conv_before) -> dict:
    """Make a module's size attributes match its (possibly cut) tensors."""
    new: dict = {}
    if isinstance(m, nn.modules.conv._ConvTransposeNd):  # weight (C_in, C_out / groups, k…)
        g = m.groups
        new = {"in_channels": m.weight.shape[0], "out_channels": m.weight.shape[1] * g}
    elif isinstance(m, nn.modules.conv._ConvNd):
        in_before, groups = conv_before
        out = m.weight.shape[0]
        if groups > 1 and groups == in_before and m.weight.shape[1] == 1:
            groups = out  # depthwise stays depthwise
        new = {"out_channels": out, "groups": groups, "in_channels": m.weight.shape[1] * groups}
    elif isinstance(m, nn.Linear):
        new = {"in_features": m.weight.shape[1], "out_features": m.weight.shape[0]}
    elif isinstance(m, nn.modules.batchnorm._NormBase):
        ref = m.weight if m.weight is not None else m.running_mean
        if ref is not None:
            new = {"num_features": ref.shape[0]}
    elif isinstance(m, nn.LayerNorm) and m.weight is not None:
        new = {"normalized_shape": tuple(m.weight.shape)}
    elif isinstance(m, nn.GroupNorm) and m.weight is not None:
        new = {"num_channels": m.weight.shape[0]}
    elif isinstance(m, nn.Embedding):
        new = {"embedding_dim": m.weight.shape[1]}
    elif _is_transposed_linear(m):  # its forward reshapes to (…, nf)
        new = {"nx": m.weight.shape[0], "nf": m.weight.shape[1]}
    elif isinstance(m, nn.RNNBase):
        new = {"hidden_size": m.weight_hh_l0.shape[1], "input_size": m.weight_ih_l0.shape[1]}
        m._init_flat_weights()  # the forward reads this list, not the attributes
    elif isinstance(m, nn.MultiheadAttention) and m._qkv_same_embed_dim:
        e = m.in_proj_weight.shape[1]
        new = {"embed_dim": e, "kdim": e, "vdim": e}
    changed = {k: v for k, v in new.items() if getattr(m, k) != v}
    for k, v in changed.items():
        setattr(m, k, v)
    return changed


def _head_changes(graph: DependencyGraph, keep) -> list[tuple[str, tuple[tuple, tuple]]]:
    """(module, ((heads before, after), (head_dim before, after))) for each cut view split;
    a module may split several tensors (q, k, v, a packed projection): every one is listed,
    and `_fix_heads` changes only the attributes that hold the split's sizes."""
    out = []
    for path, (h, d) in graph.head_splits:
        sizes = [(graph.spaces[p].size, graph.spaces.size_after(p, {
            graph.spaces.find(k): len(v) for k, v in keep.items()})) for p in (h, d)]
        if any(a != b for a, b in sizes) and (path, tuple(sizes)) not in out:
            out.append((path, tuple(sizes)))
    return out


def _fix_heads(m: nn.Module | None, heads: tuple, dim: tuple) -> dict:
    if m is None:
        return {}
    changed = {}
    for names, (before, after) in ((HEAD_ATTRS, heads), (HEAD_DIM_ATTRS, dim),
                                   (ALL_HEAD_ATTRS, (heads[0] * dim[0], heads[1] * dim[1]))):
        for a in names:
            if getattr(m, a, None) == before and before != after:
                setattr(m, a, after)
                changed[a] = after
    return changed
