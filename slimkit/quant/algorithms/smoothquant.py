"""SmoothQuant (Xiao et al. 2023): move activation outliers into the weights, per channel.

For a Linear with quantized activations: s_j = max|X_j|^α / max|W_:,j|^(1−α); x' = x / s,
W' = W · s (ScaledInputLinear: an explicit Mul before the layer, see scaled.py — in
post-LayerNorm BERT no producer can absorb it). The float function is unchanged. α is searched
per layer (or one α for all) on calibration rows: the relative output error of the layer with
its planned weight and activation schemes, ‖XWᵀ − Q(X/s)·Q(W·s)ᵀ‖² / ‖XWᵀ‖²; "no smoothing" is
a candidate too, so a layer is never made worse on that measure. Static activation ranges are
taken as min-max of X/s (exact for the MinMax observer, an approximation for the others).
Applies to Linear layers whose inputs the plan quantizes; every other layer is listed as
skipped with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from slimkit.errors import ConfigError, check_choice
from slimkit.graph.modules import set_submodule
from slimkit.quant.algorithms.api import AlgoConfig, register, report_for
from slimkit.quant.algorithms.capture import observe_inputs
from slimkit.quant.algorithms.common import float_copy
from slimkit.quant.algorithms.report import LayerResult
from slimkit.quant.algorithms.scaled import ScaledInputLinear
from slimkit.quant.observers import make_observer
from slimkit.quant.plan import resolve_plan
from slimkit.quant.qscheme import QScheme, amin_amax, fake_quantize

ALPHAS = tuple(round(0.1 * i, 2) for i in range(11))


@dataclass(frozen=True)
class SmoothQuant(AlgoConfig):
    """alpha: a fixed migration strength, or None to search `alphas`; search: "per_layer"
    or "global" (one α for every layer); max_rows: calibration rows kept per layer."""

    alpha: float | None = None
    search: str = "per_layer"
    alphas: tuple[float, ...] = ALPHAS
    max_rows: int = 1024
    max_batches: int | None = None

    def __post_init__(self) -> None:
        check_choice("SmoothQuant.search", self.search, ("per_layer", "global"))
        for a in (*self.alphas, *(() if self.alpha is None else (self.alpha,))):
            if not 0.0 <= a <= 1.0:
                raise ConfigError(f"SmoothQuant: α={a} must be in [0, 1]")


def plan_targets(model: nn.Module, qconfig, want_acts: bool, who: str):
    """({name: LayerQuant} of the Linear layers `who` applies to, [(name, why not)])."""
    if qconfig is None:
        raise ConfigError(f"{who} needs the QuantConfig it prepares for: pass qconfig=")
    targets, skipped = {}, []
    for e in resolve_plan(model, qconfig, "auto").entries:  # the plan sk.quantize will make
        m = model.get_submodule(e.name)
        spec = e.spec
        if spec is None or spec.weight is None:
            skipped.append((e.name, "stays float in the plan"))
        elif not isinstance(m, nn.Linear):
            skipped.append((e.name, f"{type(m).__name__}: {who} scales Linear inputs only"))
        elif not isinstance(spec.weight.scheme, QScheme):
            skipped.append((e.name, f"non-uniform weights ({spec.weight.scheme.describe()})"))
        elif want_acts and spec.input is None:
            skipped.append((e.name, "weight-only: no activation range to migrate (use AWQ)"))
        elif not want_acts and spec.input is not None:
            skipped.append((e.name, "activations are quantized too: AWQ searches the "
                                    "weight-only error (use SmoothQuant)"))
        else:
            targets[e.name] = spec
    return targets, skipped


class RowStats:
    """Per-channel |max|, min, max of a Linear's inputs, and a strided sample of rows."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows, self.rows = max_rows, []
        self.amax = self.lo = self.hi = None

    def add(self, x: torch.Tensor) -> None:
        r = x.reshape(-1, x.shape[-1]).float()  # (rows, C)
        lo, hi = r.amin(dim=0), r.amax(dim=0)
        self.lo = lo if self.lo is None else torch.minimum(self.lo, lo)
        self.hi = hi if self.hi is None else torch.maximum(self.hi, hi)
        self.amax = torch.maximum(self.lo.abs(), self.hi.abs())
        self.rows.append(r[:: max(1, r.shape[0] // max(1, self.max_rows // 4))].clone())
        if sum(t.shape[0] for t in self.rows) > 2 * self.max_rows:
            self.rows = [self._sample()]

    def _sample(self) -> torch.Tensor:
        rows = torch.cat(self.rows)
        return rows[:: max(1, rows.shape[0] // self.max_rows)][: self.max_rows]

    def sample(self) -> torch.Tensor:
        return self._sample()


def smoothing_scale(amax_x: torch.Tensor, amax_w: torch.Tensor, alpha: float) -> torch.Tensor:
    ok = (amax_x > 0) & (amax_w > 0)
    s = amax_x.clamp(min=1e-12).pow(alpha) / amax_w.clamp(min=1e-12).pow(1 - alpha)
    return torch.where(ok, s.clamp(min=1e-5), torch.ones_like(s))


def _fq_weight(w: torch.Tensor, spec) -> torch.Tensor:
    obs = make_observer(spec.weight.observer, spec.weight.scheme)
    obs(w)
    return fake_quantize(w, *obs.qparams(), spec.weight.scheme)


def _fq_act(x: torch.Tensor, lo, hi, act) -> torch.Tensor:
    sch = act.scheme
    if act.dynamic:
        return fake_quantize(x, *sch.qparams(*amin_amax(x, sch.granularity)), sch)
    return fake_quantize(x, *sch.qparams(lo.min().reshape(1), hi.max().reshape(1)), sch)


@torch.no_grad()
def smoothed_error(lin: nn.Linear, st: RowStats, spec, s: torch.Tensor | None) -> float:
    """Relative output error of the layer quantized after dividing its input by s."""
    x, w = st.sample(), lin.weight.detach().float()
    ref = x @ w.t()
    ones = torch.ones(w.shape[1])
    s = ones if s is None else s
    xq = _fq_act(x / s, st.lo / s, st.hi / s, spec.input)
    y = xq @ _fq_weight(w * s, spec).t()
    return float((ref - y).pow(2).sum() / ref.pow(2).sum().clamp(min=1e-30))


def collect_rows(model, names, calib, max_rows, max_batches, who) -> dict[str, RowStats]:
    stats = {n: RowStats(max_rows) for n in names}
    observe_inputs(model, list(names), calib, lambda n, x: stats[n].add(x), who, max_batches)
    return stats


def _choose(cfg: SmoothQuant, errors: dict[str, dict]) -> dict[str, float | None]:
    if cfg.alpha is not None:
        return {n: cfg.alpha for n in errors}
    if cfg.search == "per_layer":
        return {n: min(e, key=e.get) for n, e in errors.items()}
    keys = next(iter(errors.values())).keys() if errors else ()
    best = min(keys, key=lambda a: sum(e[a] for e in errors.values()), default=None)
    return {n: best for n in errors}


@register(SmoothQuant, "float", "smoothquant")
def _smoothquant(model, cfg: SmoothQuant, calib, qconfig):
    model, fused = float_copy(model)
    targets, skipped = plan_targets(model, qconfig, True, "SmoothQuant")
    stats = collect_rows(model, targets, calib, cfg.max_rows, cfg.max_batches, "SmoothQuant")
    grid = (cfg.alpha,) if cfg.alpha is not None else cfg.alphas
    errors, scales = {}, {}
    for name, spec in targets.items():
        lin, st = model.get_submodule(name), stats[name]
        amax_w = lin.weight.detach().abs().amax(dim=0)
        scales[name] = {a: smoothing_scale(st.amax, amax_w, a) for a in grid}
        errors[name] = {a: smoothed_error(lin, st, spec, s) for a, s in scales[name].items()}
        if cfg.alpha is None:
            errors[name][None] = smoothed_error(lin, st, spec, None)
    applied = []
    for name, a in _choose(cfg, errors).items():
        e = errors[name]
        base = e.get(None, smoothed_error(model.get_submodule(name), stats[name],
                                          targets[name], None))
        if a is not None:
            lin = model.get_submodule(name)
            set_submodule(model, name, ScaledInputLinear.wrap(lin, 1.0 / scales[name][a]))
        applied.append(LayerResult(name, f"α={'none' if a is None else a}: relative output "
                                   f"error {base:.3g} → {e[a]:.3g}",
                                   {"alpha": -1.0 if a is None else a, "error_before": base,
                                    "error_after": e[a]}))
    notes = ("scales kept as an explicit per-channel Mul before each layer (ScaledInputLinear)",)
    scaled = [n for n in targets if isinstance(model.get_submodule(n), ScaledInputLinear)]
    return model, report_for("smoothquant", cfg, applied, skipped, notes,
                             {"fused": fused, "scaled": scaled})
