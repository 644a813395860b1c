"""AWQ (Lin et al. 2024): activation-aware per-input-channel weight scales, weight-only.

For a Linear with weight-only quantization Q (its planned scheme and observer) and calibration
inputs X: s = mean|X_j|^r normalised by sqrt(max s · min s), W' = W · s, and the input is
divided by s (ScaledInputLinear: an explicit Mul, as in AutoAWQ's scaled activations when the
producer cannot absorb it). r is searched on a grid in [0, 1) for the least output error
    tr((W − Ŵ) XᵀX (W − Ŵ)ᵀ),   Ŵ = Q(W · s) / s,
computed exactly from the Gram matrix XᵀX (one (in, in) matrix per layer, all calibration rows).
r = 0 is s = 1: exactly round-to-nearest; when it wins, the layer is left untouched. Weight
clipping search (AWQ's second step) is not done here: set an MSE observer on the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from slimkit.errors import ConfigError
from slimkit.graph.modules import set_submodule
from slimkit.quant.algorithms.api import AlgoConfig, register, report_for
from slimkit.quant.algorithms.capture import observe_inputs
from slimkit.quant.algorithms.common import float_copy
from slimkit.quant.algorithms.gptq import weighted_error
from slimkit.quant.algorithms.hessian import Gram
from slimkit.quant.algorithms.report import LayerResult
from slimkit.quant.algorithms.scaled import ScaledInputLinear
from slimkit.quant.algorithms.smoothquant import _fq_weight, plan_targets


@dataclass(frozen=True)
class AWQ(AlgoConfig):
    """grid: exponents r = 0, 1/grid, …, (grid−1)/grid (or `ratios` when given)."""

    grid: int = 20
    ratios: tuple[float, ...] | None = None
    max_batches: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.grid, int) or self.grid < 1:
            raise ConfigError(f"AWQ.grid={self.grid!r} must be an int ≥ 1")
        if self.ratios is not None and not all(0.0 <= r <= 1.0 for r in self.ratios):
            raise ConfigError(f"AWQ.ratios={self.ratios} must lie in [0, 1]")

    def exponents(self) -> tuple[float, ...]:
        return self.ratios if self.ratios is not None else tuple(
            i / self.grid for i in range(self.grid))


def awq_scale(mean_abs: torch.Tensor, r: float) -> torch.Tensor:
    if r == 0:
        return torch.ones_like(mean_abs)
    s = mean_abs.clamp(min=1e-4).pow(r)
    return s / torch.sqrt(s.max() * s.min())


@torch.no_grad()
def awq_error(w: torch.Tensor, s: torch.Tensor, h: torch.Tensor, spec) -> float:
    """Output error of weight-only Q(W·s)/s under the Gram matrix h = XᵀX (scale-free)."""
    w_hat = _fq_weight(w * s, spec) / s
    return weighted_error(w, w_hat, h)


@register(AWQ, "float", "awq")
def _awq(model, cfg: AWQ, calib, qconfig):
    model, fused = float_copy(model)
    targets, skipped = plan_targets(model, qconfig, False, "AWQ")
    grams = {n: Gram(model.get_submodule(n).in_features) for n in targets}
    observe_inputs(model, list(targets), calib,
                   lambda n, x: grams[n].add(model.get_submodule(n), x), "AWQ", cfg.max_batches)
    applied = []
    for name, spec in targets.items():
        lin, g = model.get_submodule(name), grams[name]
        w, h, mean_abs = lin.weight.detach().float(), g.xtx, g.mean_abs()
        errs = {r: awq_error(w, awq_scale(mean_abs, r), h, spec) for r in cfg.exponents()}
        best = min(errs, key=errs.get)
        base = errs[0.0] if 0.0 in errs else awq_error(w, torch.ones_like(mean_abs), h, spec)
        if best != 0.0:
            set_submodule(model, name, ScaledInputLinear.wrap(lin, 1.0 / awq_scale(mean_abs, best)))
        applied.append(LayerResult(name, f"r={best:.2f}: output error {base:.4g} → "
                                   f"{errs[best]:.4g} (×{errs[best] / max(base, 1e-30):.3f})",
                                   {"ratio": best, "error_rtn": base, "error_awq": errs[best]}))
    notes = ("scales kept as an explicit per-channel Mul before each layer (ScaledInputLinear); "
             "a layer whose best exponent is 0 is left as it was (round-to-nearest)",)
    scaled = [n for n in targets if isinstance(model.get_submodule(n), ScaledInputLinear)]
    return model, report_for("awq", cfg, applied, skipped, notes,
                             {"fused": fused, "scaled": scaled})
