"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization"), folded into weights.

For a pair a → f → b, with f positively homogeneous per channel (f(x/s) = f(x)/s for s > 0:
ReLU, LeakyReLU, max-pool, identity, dropout in eval, flatten into a Linear), output channel i
of a is divided by s_i and input channel i of b multiplied by s_i, with
    s_i = sqrt(r_a,i / r_b,i),  r_a,i = max |W_a[i, ...]|,  r_b,i = max |W_b[:, i, ...]|,
so both ranges become sqrt(r_a,i · r_b,i) and the float function is unchanged. Chains
(conv → conv → conv) converge by repeating the pass. BN is folded first (as sk.quantize does).

Pairs are left alone, and listed, when f is not positively homogeneous (ReLU6, hardtanh:
min(6, x/s) ≠ min(6, x)/s; GELU, SiLU, sigmoid, tanh), when a's output has another user (a
residual add, a concat, two branches), or when a layer is grouped but not depthwise.
Equalization changes weights only: the result is a float model for sk.quantize.
"""

from __future__ import annotations

import operator
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from slimkit.errors import ConfigError
from slimkit.graph.trace import TraceError, symbolic_trace
from slimkit.quant.algorithms.api import AlgoConfig, register, report_for
from slimkit.quant.algorithms.common import float_copy
from slimkit.quant.algorithms.report import LayerResult

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)
_PASS_MODULES = (nn.ReLU, nn.LeakyReLU, nn.MaxPool1d, nn.MaxPool2d, nn.Identity, nn.Dropout)
_PASS_FUNCS = {F.relu, torch.relu, F.leaky_relu, F.max_pool1d, F.max_pool2d, F.dropout}
_FLATTEN_FUNCS = {torch.flatten}


@dataclass(frozen=True)
class CLE(AlgoConfig):
    """iterations: passes over all pairs (a chain of n layers needs a few); tol: stop when
    no scale moves by more than this (relative)."""

    iterations: int = 20
    tol: float = 1e-5

    def __post_init__(self) -> None:
        if not isinstance(self.iterations, int) or self.iterations < 1:
            raise ConfigError(f"CLE.iterations={self.iterations!r} must be an int ≥ 1")


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    via: tuple[str, ...]  # what sits between them
    block: int = 1  # b's input columns per channel of a (>1: a flatten of (C, H, W))


def _op_name(gm: fx.GraphModule, n: fx.Node) -> str:
    if n.op == "call_module":
        return type(gm.get_submodule(n.target)).__name__
    return getattr(n.target, "__name__", str(n.target))


def _is_layer(gm, n) -> bool:
    return n.op == "call_module" and type(gm.get_submodule(n.target)) in _LAYERS


def _passes(gm, n) -> bool:
    if n.op == "call_module":
        m = gm.get_submodule(n.target)
        if isinstance(m, nn.LeakyReLU):
            return m.negative_slope >= 0
        return type(m) in _PASS_MODULES
    if n.op == "call_function":
        return n.target in _PASS_FUNCS
    return n.op == "call_method" and n.target in ("relu", "relu_")


def _is_flatten(gm, n) -> bool:
    if n.op == "call_module":
        m = gm.get_submodule(n.target)
        return isinstance(m, nn.Flatten) and m.start_dim == 1 and m.end_dim == -1
    if n.op == "call_function" and n.target in _FLATTEN_FUNCS:
        return (n.args[1:2] or (n.kwargs.get("start_dim", 0),))[0] == 1
    return False


def _grouping_ok(m: nn.Module) -> bool:
    g = getattr(m, "groups", 1)
    return g == 1 or g == m.in_channels == m.out_channels


def find_pairs(gm: fx.GraphModule) -> tuple[list[Pair], list[tuple[str, str]]]:
    """Equalizable pairs, and (layer, why not) for every layer that starts none."""
    calls: dict[str, int] = {}
    for n in gm.graph.nodes:
        if n.op == "call_module":
            calls[n.target] = calls.get(n.target, 0) + 1
    pairs, skipped = [], []
    for n in gm.graph.nodes:
        if not _is_layer(gm, n):
            continue
        pair, why = _follow(gm, n, calls)
        if pair is not None:
            pairs.append(pair)
        else:
            skipped.append((n.target, why))
    return pairs, skipped


def _follow(gm, start: fx.Node, calls) -> tuple[Pair | None, str]:
    a = gm.get_submodule(start.target)
    if calls[start.target] > 1:
        return None, "the layer is called more than once (shared weights)"
    if not _grouping_ok(a):
        return None, f"grouped conv (groups={a.groups}) that is not depthwise"
    cur, via, flat = start, [], False
    while True:
        users = list(cur.users)
        if not users:
            return None, "its output is a model output"
        if len(users) > 1:
            ops = ", ".join(_op_name(gm, u) for u in users)
            return None, f"its output{' (after ' + ' → '.join(via) + ')' if via else ''} " \
                         f"has {len(users)} users ({ops}): scaling it would change them"
        u = users[0]
        if u.op == "output":
            return None, "its output is a model output"
        if _is_layer(gm, u) and u.args and u.args[0] is cur:
            return _pair(gm, start, u, via, flat, calls)
        if _passes(gm, u):
            via.append(_op_name(gm, u))
        elif _is_flatten(gm, u) and not flat:
            via.append("flatten")
            flat = True
        else:
            name = _op_name(gm, u)
            why = ("not positively homogeneous (f(x/s) ≠ f(x)/s)"
                   if name in ("ReLU6", "relu6", "Hardtanh", "hardtanh", "GELU", "gelu",
                               "SiLU", "silu", "Sigmoid", "sigmoid", "Tanh", "tanh",
                               "Hardswish", "hardswish", "ELU", "elu")
                   else "an op CLE does not pass through")
            if u.op == "call_function" and u.target in (operator.add, torch.add, torch.cat):
                why = "a residual add / concat joins it with another tensor"
            return None, f"followed by {name}: {why}"
        cur = u


def _pair(gm, start, end, via, flat, calls) -> tuple[Pair | None, str]:
    a, b = gm.get_submodule(start.target), gm.get_submodule(end.target)
    if calls[end.target] > 1:
        return None, f"next layer {end.target} is called more than once"
    if not _grouping_ok(b):
        return None, f"next layer {end.target} is a grouped conv that is not depthwise"
    c = a.out_features if isinstance(a, nn.Linear) else a.out_channels
    c_in = b.in_features if isinstance(b, nn.Linear) else b.in_channels
    if flat != (isinstance(b, nn.Linear) and not isinstance(a, nn.Linear)):
        return None, f"flatten between {type(a).__name__} and {type(b).__name__}"
    if c_in % c:
        return None, f"{end.target} has {c_in} inputs for {c} channels of {start.target}"
    return Pair(start.target, end.target, tuple(via), c_in // c), ""


def _out_range(a: nn.Module) -> torch.Tensor:
    return a.weight.detach().abs().reshape(a.weight.shape[0], -1).amax(dim=1)  # (C,)


def _in_view(b: nn.Module, c: int, block: int) -> torch.Tensor:
    """b's weight as (C, rest): row i holds every weight that multiplies channel i."""
    w = b.weight.detach()
    if getattr(b, "groups", 1) > 1:  # depthwise: W[i] is input channel i
        return w.reshape(c, -1)
    return w.reshape(w.shape[0], c, block, -1).transpose(0, 1).reshape(c, -1)


@torch.no_grad()
def _equalize(a: nn.Module, b: nn.Module, block: int) -> float:
    """Scale one pair in place; returns the largest relative change of a scale from 1."""
    r_a = _out_range(a)
    c = r_a.numel()
    r_b = _in_view(b, c, block).abs().amax(dim=1)
    ok = (r_a > 0) & (r_b > 0)
    s = torch.where(ok, torch.sqrt(r_a / torch.where(ok, r_b, 1.0)), torch.ones_like(r_a))
    shape_a = (-1,) + (1,) * (a.weight.dim() - 1)
    a.weight.div_(s.reshape(shape_a))
    if a.bias is not None:
        a.bias.div_(s)
    if getattr(b, "groups", 1) > 1:
        b.weight.mul_(s.reshape(-1, *[1] * (b.weight.dim() - 1)))
    else:
        w = b.weight.reshape(b.weight.shape[0], c, block, -1)
        w.mul_(s.reshape(1, c, 1, 1))
    return float((s - 1).abs().max())


def _balance(a: nn.Module, b: nn.Module, block: int) -> float:
    """Mean over channels of min(r_a, r_b) / max(r_a, r_b): 1 when perfectly equalized."""
    r_a = _out_range(a)
    r_b = _in_view(b, r_a.numel(), block).abs().amax(dim=1)
    return float((torch.minimum(r_a, r_b) / torch.maximum(r_a, r_b).clamp(min=1e-30)).mean())


@register(CLE, "float", "cle")
def _cle(model: nn.Module, cfg: CLE, calib, qconfig):
    model, fused = float_copy(model)
    try:
        gm = symbolic_trace(model)
    except TraceError as e:
        warnings.warn(f"CLE skipped: {e}", stacklevel=3)
        return model, report_for("cle", cfg, notes=(f"nothing equalized: {e}",),
                                 structure={"fused": fused})
    pairs, skipped = find_pairs(gm)
    mods = dict(model.named_modules())
    before = {p: _balance(mods[p.a], mods[p.b], p.block) for p in pairs}
    passes = 0
    for passes in range(1, cfg.iterations + 1):  # noqa: B007 — reported below
        moved = max((_equalize(mods[p.a], mods[p.b], p.block) for p in pairs), default=0.0)
        if moved < cfg.tol:
            break
    applied = []
    for p in pairs:
        after = _balance(mods[p.a], mods[p.b], p.block)
        applied.append(LayerResult(
            f"{p.a} → {p.b}",
            f"via {' → '.join(p.via) or 'nothing'}; range balance {before[p]:.3f} → {after:.3f}",
            {"balance_before": before[p], "balance_after": after}))
    notes = (f"{passes} passes; scales folded into weights and biases (BN folded first)",)
    return model, report_for("cle", cfg, applied, skipped, notes, {"fused": fused})
