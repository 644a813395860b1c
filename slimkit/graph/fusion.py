"""Conv/Linear → BatchNorm pairs and folding BN into the layer for inference.

Pairs come from a torch.fx trace at module level (a conv whose only user is a BN of the same
channel count); a model fx cannot trace falls back to adjacent children of nn.Sequential.
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.graph.modules import set_submodule

_CONV_BN = {nn.Conv1d: nn.BatchNorm1d, nn.Conv2d: nn.BatchNorm2d, nn.Conv3d: nn.BatchNorm3d,
            nn.Linear: nn.BatchNorm1d}


def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """[(layer_name, bn_name)] for every Conv / Linear directly and exclusively feeding a BN
    of matching width (Linear → BatchNorm1d on (N, C) inputs)."""
    try:
        pairs = _pairs_from_fx(model)
    except Exception:  # noqa: BLE001 — untraceable python: fall back to Sequential adjacency
        pairs = _pairs_from_sequential(model)
    mods = dict(model.named_modules())
    return [(c, b) for c, b in pairs if _compatible(mods[c], mods[b])]


def _compatible(conv: nn.Module, bn: nn.Module) -> bool:
    if _CONV_BN.get(type(conv)) is not type(bn):
        return False
    out = conv.out_features if isinstance(conv, nn.Linear) else conv.out_channels
    return out == bn.num_features


def _pairs_from_fx(model: nn.Module) -> list[tuple[str, str]]:
    gm = torch.fx.symbolic_trace(model)
    pairs = []
    for node in gm.graph.nodes:
        if node.op != "call_module" or len(node.users) != 1:
            continue
        (user,) = node.users
        if user.op == "call_module" and user.args and user.args[0] is node:
            pairs.append((node.target, user.target))
    # a module called twice (shared) must not be folded: count calls per target
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    return [(c, b) for c, b in pairs if calls[c] == 1 and calls[b] == 1]


def _pairs_from_sequential(model: nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Sequential):
            kids = list(mod.named_children())
            for (a, ma), (b, _) in zip(kids, kids[1:], strict=False):
                if type(ma) in _CONV_BN:
                    prefix = f"{name}." if name else ""
                    pairs.append((prefix + a, prefix + b))
    return pairs


@torch.no_grad()
def fold_bn(conv: nn.Module, bn: nn.Module) -> nn.Module:
    """Return conv with BN's running statistics folded into weight and bias (eval semantics)."""
    f = bn.running_var.add(bn.eps).rsqrt()
    if bn.affine:
        f = f * bn.weight
    w = conv.weight * f.reshape(-1, *[1] * (conv.weight.dim() - 1))
    b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    b = (b - bn.running_mean) * f + (bn.bias if bn.affine else 0.0)
    conv.weight = nn.Parameter(w)
    conv.bias = nn.Parameter(b)
    return conv


def fuse_conv_bn(model: nn.Module) -> list[tuple[str, str]]:
    """Fold every Conv/Linear → BN pair in place (BN becomes Identity); the pairs folded.
    ReLU stays a separate op: runtimes fuse it (ORT into QLinearConv, OpenVINO into its
    conv primitive), and eager PyTorch has no fused conv-ReLU kernel outside torch.ao."""
    pairs = conv_bn_pairs(model)
    for conv_name, bn_name in pairs:
        fold_bn(model.get_submodule(conv_name), model.get_submodule(bn_name))
        set_submodule(model, bn_name, nn.Identity())
    return pairs
