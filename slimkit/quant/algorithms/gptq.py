"""GPTQ (Frantar et al. 2022): column-by-column rounding with Hessian error feedback.

For one layer with weight W (out, cols) and H = 2 X^T X / n over its calibration inputs:
damp H += λ·mean(diag H)·I; U = chol(H^-1) (upper); for each column j (in blocks of B,
lazily updating the rest): q_j = quant(w_j), e_j = (w_j − q_j) / U_jj, W[:, j+1:] −= e_j U_j,j+1:.
With act_order the columns go in order of decreasing diag(H). Scales and zero points are the
ones sk.quantize chose (static groups: each column keeps its group's scale), so the result is
the same PackedWeight with other codes. With H = I every off-diagonal of U is 0, no error is
fed forward, and GPTQ is round-to-nearest exactly.

Layers run one at a time in forward order, each Hessian from the inputs the quantized model
(already GPTQ'd before it) produces: peak memory is one (cols, cols) Hessian and one batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from slimkit.errors import CalibrationError, ConfigError
from slimkit.quant.algorithms.api import AlgoConfig, register, report_for
from slimkit.quant.algorithms.capture import (
    batches,
    check_finite,
    layers_in_order,
    run_to,
)
from slimkit.quant.algorithms.common import linear_scheme, repack, weight_input, wrapped_layers
from slimkit.quant.algorithms.hessian import Gram, unsupported
from slimkit.quant.algorithms.report import LayerResult
from slimkit.quant.granularity import PerChannel, PerGroup, PerTensor
from slimkit.quant.qscheme import QScheme


@dataclass(frozen=True)
class GPTQ(AlgoConfig):
    """damp: λ, the fraction of mean(diag H) added to the diagonal. block_size: columns per
    lazy update. act_order: columns by decreasing diag(H). min_rows_per_column: calibration
    rows (samples × positions) needed per weight column — 1.0 gives a full-rank Hessian."""

    damp: float = 0.01
    block_size: int = 128
    act_order: bool = False
    min_rows_per_column: float = 1.0
    max_batches: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.damp <= 1.0:
            raise ConfigError(f"GPTQ.damp={self.damp} must be in [0, 1]")
        if not isinstance(self.block_size, int) or self.block_size < 1:
            raise ConfigError(f"GPTQ.block_size={self.block_size!r} must be an int ≥ 1")
        if self.min_rows_per_column < 0:
            raise ConfigError(f"GPTQ.min_rows_per_column={self.min_rows_per_column} must be ≥ 0")


def column_qparams(scheme: QScheme, scale: torch.Tensor, zp: torch.Tensor, out: int, cols: int):
    """(scale, zp) as (out, cols) so column j of a (out, cols) weight reads [:, j]."""
    g = scheme.granularity
    if isinstance(g, PerTensor):
        s, z = scale.reshape(1, 1).expand(out, cols), zp.reshape(1, 1).expand(out, cols)
    elif isinstance(g, PerChannel) and g.axis == 0:
        s, z = scale.reshape(-1, 1).expand(out, cols), zp.reshape(-1, 1).expand(out, cols)
    elif isinstance(g, PerGroup):
        s = scale.reshape(out, cols // g.size).repeat_interleave(g.size, dim=1)
        z = zp.reshape(out, cols // g.size).repeat_interleave(g.size, dim=1)
    else:
        raise ConfigError(f"GPTQ: weights quantized {scheme.describe()} are not supported; "
                          "use per-tensor, per-channel (axis 0) or per-group")
    return s.float(), z.float()


def _inverse_cholesky(h: torch.Tensor, damp: float) -> torch.Tensor:
    h = h.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0  # inputs always 0: their columns round to nearest, feed nothing
    lam = damp * torch.mean(torch.diag(h))
    idx = torch.arange(h.shape[0])
    for attempt in range(6):
        hd = h.clone()
        hd[idx, idx] += lam * (10.0 ** attempt)
        try:
            lower = torch.linalg.cholesky(hd)
            return torch.linalg.cholesky(torch.cholesky_inverse(lower), upper=True)
        except torch.linalg.LinAlgError:
            continue
    raise CalibrationError("GPTQ: the Hessian is not positive definite even with 10^5× damping")


@torch.no_grad()
def gptq_codes(w: torch.Tensor, h: torch.Tensor, scheme: QScheme, scale: torch.Tensor,
               zp: torch.Tensor, damp: float = 0.01, block_size: int = 128,
               act_order: bool = False) -> torch.Tensor:
    """Integer codes (out, cols) for w (out, cols) under Hessian h (cols, cols)."""
    w = w.detach().float().clone()
    out, cols = w.shape
    s, z = column_qparams(scheme, scale, zp, out, cols)
    perm = torch.argsort(torch.diag(h), descending=True) if act_order else torch.arange(cols)
    w, s, z = w[:, perm], s[:, perm], z[:, perm]
    u = _inverse_cholesky(h[perm][:, perm].float(), damp)
    r = torch.reciprocal(s)
    codes = torch.zeros_like(w)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        w1, u1 = w[:, i1:i2].clone(), u[i1:i2, i1:i2]
        err1 = torch.zeros_like(w1)
        for i in range(i2 - i1):
            j = i1 + i
            col = w1[:, i]
            q = torch.clamp(torch.round(col * r[:, j]) + z[:, j], scheme.qmin, scheme.qmax)
            codes[:, j] = q
            e = (col - (q - z[:, j]) * s[:, j]) / u1[i, i]
            w1[:, i:] -= e.unsqueeze(1) * u1[i, i:].unsqueeze(0)
            err1[:, i] = e
        w[:, i2:] -= err1 @ u[i1:i2, i2:]
    return codes[:, torch.argsort(perm)].to(torch.int32)


def weighted_error(w: torch.Tensor, w_hat: torch.Tensor, h: torch.Tensor) -> float:
    """tr((W − Ŵ) H (W − Ŵ)^T): the layer output error GPTQ minimizes (×n/2)."""
    d = (w - w_hat).double()
    return float(torch.einsum("oi,ij,oj->", d, h.double(), d))


def _gram(qmodel, name: str, calib, cfg: GPTQ, who: str) -> Gram:
    layer = qmodel.get_submodule(name)
    gram = Gram(layer.layer.weight.reshape(layer.layer.weight.shape[0], -1).shape[1]
                if layer.packed is None else layer.packed.shape[1:].numel())
    for i, b in enumerate(batches(calib, cfg.max_batches, who)):
        x = run_to(qmodel, name, b, output=False)
        check_finite(x, f"the input of '{name}'", who, i)
        gram.add(layer.layer, weight_input(layer, x))
    return gram


def _check_rows(name: str, gram: Gram, cols: int, cfg: GPTQ) -> None:
    need = math.ceil(cfg.min_rows_per_column * cols)
    if gram.rows >= need:
        return
    per_sample = gram.rows / max(gram.samples, 1)
    samples = math.ceil(need / max(per_sample, 1e-9))
    raise CalibrationError(
        f"GPTQ on '{name}': its {cols}×{cols} Hessian needs ≥ {need} input rows "
        f"(min_rows_per_column={cfg.min_rows_per_column} × {cols} columns); calibration gave "
        f"{gram.rows} rows from {gram.samples} samples ({per_sample:g} rows per sample), so pass "
        f"at least {samples} samples, or lower GPTQ.min_rows_per_column")


def packed_skip_reason(layer) -> str | None:
    """Why a layer has no linear packed weight to re-round, or None."""
    if layer.packed is None:
        return "weight stays float in the plan" if layer.weight_quantizer is None else \
            "not converted: call sk.convert first"
    if linear_scheme(layer) is None:
        return f"non-uniform weights ({layer.packed.scheme.describe()})"
    return None


def skip_reason(layer) -> str | None:
    why = packed_skip_reason(layer)
    if why is not None:
        return why
    g = layer.packed.scheme.granularity
    if isinstance(g, PerChannel) and g.axis != 0:
        return f"per-channel weights on axis {g.axis}: columns do not map to one scale"
    return unsupported(layer.layer)


@register(GPTQ, "quantized", "gptq")
def _gptq(qmodel, cfg: GPTQ, calib, reference):
    layers = {m.name: m for m in wrapped_layers(qmodel)}
    applied, skipped = [], []
    for name, layer in layers_in_order(qmodel, layers, calib, "GPTQ", skip_reason, skipped):
        w = reference.get_submodule(name).weight.detach()
        w2 = w.reshape(w.shape[0], -1).float()  # (out, cols)
        gram = _gram(qmodel, name, calib, cfg, "GPTQ")
        _check_rows(name, gram, w2.shape[1], cfg)
        h, pw = gram.hessian(), layer.packed
        rtn = pw.codes().reshape(w2.shape).float()
        codes = gptq_codes(w2, h, pw.scheme, pw.params, pw.zero_point, cfg.damp,
                           cfg.block_size, cfg.act_order)
        s, z = column_qparams(pw.scheme, pw.params, pw.zero_point, *w2.shape)
        e_rtn = weighted_error(w2, (rtn - z) * s, h)
        e_gptq = weighted_error(w2, (codes.float() - z) * s, h)
        repack(layer, codes.reshape(w.shape))
        applied.append(LayerResult(
            name, f"H-weighted error {e_rtn:.4g} → {e_gptq:.4g} ({gram.rows} rows)",
            {"error_rtn": e_rtn, "error_gptq": e_gptq, "rows": float(gram.rows)}))
        del gram, h  # one Hessian alive at a time
    return report_for("gptq", cfg, applied, skipped)
