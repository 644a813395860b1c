"""Per-layer sensitivity: quantize one layer at a time with each candidate scheme.

For layer l and scheme k, the float model (BN folded) runs with only l swapped for its
quantized wrapper (calibrated on `data`, then frozen): output SQNR against the float output,
and, with `loss_fn(output, batch)`, the change of the task loss; with `metric(model)`, the
change of a metric. Calibration of all schemes of one layer shares one pass. Hutchinson's
estimator gives tr(H_l) of the loss (or, without a loss, of ½‖f(x) − f₀(x)‖², whose Hessian at
the float weights is the Gauss–Newton matrix) from Rademacher probes: tr(H) ≈ E[vᵀHv].
Results are cached as JSON under `cache_dir`, keyed by the weights, the data, the schemes and
the options (a loss or metric is keyed by its qualified name).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from slimkit.atomic import write_atomic
from slimkit.errors import ConfigError
from slimkit.graph.modules import set_submodule
from slimkit.quant.algorithms.capture import batches
from slimkit.quant.algorithms.common import float_reference
from slimkit.quant.calibrate import call_model
from slimkit.quant.metrics import sqnr
from slimkit.quant.mixed_precision.table import SensitivityRow, SensitivityTable
from slimkit.quant.modules import QUANT_MODULES
from slimkit.quant.spec import LayerQuant


def _hash_tensors(h, tensors) -> None:
    for t in tensors:
        t = t.detach().contiguous().cpu()
        h.update(f"{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def _batch_tensors(b):
    if isinstance(b, torch.Tensor):
        return [b]
    if isinstance(b, dict):
        return [b[k] for k in sorted(b)]
    return [t for t in b if isinstance(t, torch.Tensor)]


def cache_key(model: nn.Module, data: list, schemes: dict, options: dict) -> str:
    h = hashlib.sha1()
    sd = model.state_dict()
    for k in sorted(sd):
        h.update(k.encode())
        _hash_tensors(h, [sd[k]])
    for b in data:
        _hash_tensors(h, _batch_tensors(b))
    h.update(json.dumps({k: (v.describe() if v is not None else "float")
                         for k, v in schemes.items()}, sort_keys=True).encode())
    h.update(json.dumps(options, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _outputs(model: nn.Module, data: list) -> list[torch.Tensor]:
    outs = []
    with torch.no_grad():
        for b in data:
            y = call_model(model, b)
            if not isinstance(y, torch.Tensor):
                raise ConfigError(f"sensitivity needs a model that returns a tensor, not "
                                  f"{type(y).__name__}; wrap it (e.g. pool the hidden states)")
            outs.append(y.detach())
    return outs


def _not_applicable(module: nn.Module, spec: LayerQuant) -> str | None:
    scheme = getattr(spec.weight, "scheme", None) if spec.weight is not None else None
    if scheme is not None and hasattr(scheme, "granularity"):
        try:
            scheme.granularity.check(module.weight.shape, "the weight")
        except ConfigError as e:
            return str(e)
    if any(a is not None and a.dynamic for a in (spec.input, spec.output)) and not isinstance(
            module, nn.Linear):
        return "dynamic activations: Linear layers only"
    return None


@torch.no_grad()
def _calibrated(ref, name: str, specs: dict[str, LayerQuant], data: list) -> dict:
    """{scheme: frozen QuantLayer of `name`} — calibrated in one pass over data."""
    mod = ref.get_submodule(name)
    qls = {k: QUANT_MODULES[type(mod)](copy.deepcopy(mod), s, name) for k, s in specs.items()}
    if any(s.needs_calibration for s in specs.values()):
        def observe(_m, args):
            for q in qls.values():
                q(args[0])

        h = mod.register_forward_pre_hook(observe)
        try:
            for b in data:
                call_model(ref, b)
        finally:
            h.remove()
    for q in qls.values():
        q.freeze()
    return qls


def _weight_error(q, mod) -> float | None:
    if q.packed is None:
        return None
    return float((q.packed() - mod.weight.detach()).double().pow(2).sum())


def hutchinson_traces(ref: nn.Module, names: list[str], data: list, loss_fn, probes: int,
                      seed: int = 0) -> dict[str, float]:
    """tr(∂²L/∂W_l²) per layer, averaged over probes and batches."""
    params = [ref.get_submodule(n).weight for n in names]
    req = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    gen = torch.Generator().manual_seed(seed)
    acc = torch.zeros(len(names), dtype=torch.float64)
    f0 = _outputs(ref, data) if loss_fn is None else None
    try:
        for i, b in enumerate(data):
            with torch.enable_grad():
                y = call_model(ref, b)
                loss = (0.5 * (y - f0[i]).pow(2).sum() if loss_fn is None else loss_fn(y, b))
                grads = torch.autograd.grad(loss, params, create_graph=True)
                for _ in range(probes):
                    vs = [torch.randint(0, 2, p.shape, generator=gen).float() * 2 - 1
                          for p in params]
                    gv = sum((g * v).sum() for g, v in zip(grads, vs, strict=True))
                    hv = torch.autograd.grad(gv, params, retain_graph=True)
                    acc += torch.tensor([float((h * v).sum()) for h, v in zip(hv, vs,
                                                                            strict=True)])
    finally:
        for p, r in zip(params, req, strict=True):
            p.requires_grad_(r)
    acc /= probes * len(data)
    return {n: float(t) for n, t in zip(names, acc, strict=True)}


def sensitivity(model: nn.Module, data: Iterable, schemes: dict[str, LayerQuant | None], *,
                loss_fn: Callable | None = None, metric: Callable[[nn.Module], float] | None = None,
                hutchinson_probes: int = 0, layers: list[str] | None = None,
                max_batches: int | None = None, cache_dir: str | Path | None = None,
                ) -> SensitivityTable:
    """One call, the whole table. `schemes`: name → LayerQuant (None = float)."""
    data = list(batches(data, max_batches, "sensitivity"))
    ref = float_reference(model)
    names = layers or [n for n, m in ref.named_modules() if type(m) in QUANT_MODULES]
    options = {"loss": getattr(loss_fn, "__qualname__", None),
               "metric": getattr(metric, "__qualname__", None), "probes": hutchinson_probes,
               "layers": names}
    key = cache_key(model, data, schemes, options)
    path = Path(cache_dir) / f"sensitivity-{key}.json" if cache_dir is not None else None
    if path is not None and path.exists():
        return SensitivityTable.from_dict(json.loads(path.read_text()))
    table = _measure(ref, names, data, schemes, loss_fn, metric, hutchinson_probes, key)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(table.to_dict(), indent=1))
    return table


def _measure(ref, names, data, schemes, loss_fn, metric, probes, key) -> SensitivityTable:
    f_out = _outputs(ref, data)
    f_loss = _mean_loss(f_out, data, loss_fn)
    f_metric = metric(ref) if metric is not None else None
    traces = hutchinson_traces(ref, names, data, loss_fn, probes) if probes > 0 else {}
    rows = []
    for name in names:
        mod = ref.get_submodule(name)
        specs, skip = {}, {}
        for k, s in schemes.items():
            why = None if s is None else _not_applicable(mod, s)
            if why:
                skip[k] = why
            elif s is not None:
                specs[k] = s
        qls = _calibrated(ref, name, specs, data)
        n = mod.weight.numel()
        for k, s in schemes.items():
            if s is None:
                rows.append(SensitivityRow(name, k, float("inf"), 0.0,
                                           0.0 if metric else None, 0.0, 0.0))
            elif k in skip:
                rows.append(SensitivityRow(name, k, None, note=skip[k]))
            else:
                rows.append(_row(ref, name, k, qls[k], mod, data, f_out, f_loss, loss_fn,
                                 metric, f_metric, traces.get(name), n))
    return SensitivityTable(tuple(names), tuple(schemes), tuple(rows), traces, key)


def _mean_loss(outs, data, loss_fn) -> float | None:
    if loss_fn is None:
        return None
    with torch.no_grad():
        return sum(float(loss_fn(y, b)) for y, b in zip(outs, data, strict=True)) / len(data)


def _row(ref, name, k, ql, mod, data, f_out, f_loss, loss_fn, metric, f_metric, tr, n):
    set_submodule(ref, name, ql)
    try:
        outs = _outputs(ref, data)
        m = metric(ref) - f_metric if metric is not None else None
    finally:
        set_submodule(ref, name, mod)
    db = sqnr(torch.cat([o.reshape(-1) for o in f_out]), torch.cat([o.reshape(-1) for o in outs]))
    dl = None if loss_fn is None else _mean_loss(outs, data, loss_fn) - f_loss
    we = _weight_error(ql, mod)
    hawq = None if tr is None or we is None else tr / n * we
    return SensitivityRow(name, k, db, dl, m, we, hawq)
