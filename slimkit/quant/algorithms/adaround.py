"""AdaRound (Nagel et al. 2020): learn whether each weight rounds down or up.

Per layer, with the layer's scales fixed (those sk.quantize chose): W̃ = s·(clamp(⌊W/s⌋ + h(V)
+ z, qmin, qmax) − z), h(V) = clip(σ(V)(ζ − γ) + γ, 0, 1) (rectified sigmoid, ζ = 1.1, γ = −0.1),
V initialised so that W̃ = W. Minimise the layer reconstruction loss
    L = mean ‖f(x_q; W) − f(x_q; W̃)‖² over output channels   (x_q: the quantized model's input,
                                                                target: the float model's output)
    + λ Σ (1 − |2h(V) − 1|^β),   β annealed (cosine) from β_start to β_end after a warm-up
with Adam on V, then round hard: h = [V ≥ 0]. Layers run in forward order, each on the inputs
the already-rounded layers before it produce. The hard result is kept only if its
reconstruction loss (the first term, over every stored sample) is no larger than
round-to-nearest's — so AdaRound is never worse than RTN on the loss it minimizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from slimkit.errors import ConfigError
from slimkit.quant.algorithms.api import AlgoConfig, register, report_for
from slimkit.quant.algorithms.capture import (
    batches,
    check_finite,
    layers_in_order,
    run_to,
)
from slimkit.quant.algorithms.common import (
    channel_dim,
    dequant_codes,
    layer_output,
    repack,
    weight_input,
    wrapped_layers,
)
from slimkit.quant.algorithms.gptq import packed_skip_reason
from slimkit.quant.algorithms.report import LayerResult

ZETA, GAMMA = 1.1, -0.1


@dataclass(frozen=True)
class AdaRound(AlgoConfig):
    iterations: int = 1000
    batch_size: int = 32  # samples per optimisation step
    lr: float = 1e-2
    reg_weight: float = 0.01  # λ
    beta_start: float = 20.0
    beta_end: float = 2.0
    warm_start: float = 0.2  # fraction of iterations without the rounding regularizer
    max_samples: int = 512  # calibration samples kept per layer
    max_batches: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for f in ("iterations", "batch_size", "max_samples"):
            v = getattr(self, f)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"AdaRound.{f}={v!r} must be an int ≥ 1")
        if not 0.0 <= self.warm_start < 1.0:
            raise ConfigError(f"AdaRound.warm_start={self.warm_start} must be in [0, 1)")
        if self.lr <= 0 or self.reg_weight < 0:
            raise ConfigError("AdaRound: lr must be > 0 and reg_weight ≥ 0")


def rectified_sigmoid(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def _init_v(rest: torch.Tensor) -> torch.Tensor:
    p = ((rest - GAMMA) / (ZETA - GAMMA)).clamp(1e-4, 1 - 1e-4)
    return torch.log(p / (1 - p))


def recon_loss(y: torch.Tensor, target: torch.Tensor, dim: int) -> torch.Tensor:
    return (y - target).pow(2).sum(dim=dim).mean()


def _beta(cfg: AdaRound, it: int) -> float | None:
    warm = int(cfg.warm_start * cfg.iterations)
    if it < warm:
        return None
    t = (it - warm) / max(cfg.iterations - warm, 1)
    return cfg.beta_end + 0.5 * (cfg.beta_start - cfg.beta_end) * (1 + math.cos(t * math.pi))


class _Rounding:
    """The layer's weight in its granularity's (R, N) view, floor and learnable V."""

    def __init__(self, layer, w: torch.Tensor) -> None:
        pw = layer.packed
        self.layer, self.scheme, self.shape = layer, pw.scheme, w.shape
        g = pw.scheme.granularity
        self.g = g
        v = g.view(w.detach().float())  # (R, N)
        self.s = pw.params.reshape(-1, 1)
        self.z = pw.zero_point.float().reshape(-1, 1)
        scaled = v * torch.reciprocal(self.s)
        self.floor = torch.floor(scaled)
        self.v = torch.nn.Parameter(_init_v(scaled - self.floor))

    def weight(self, h: torch.Tensor) -> torch.Tensor:
        q = torch.clamp(self.floor + h + self.z, self.scheme.qmin, self.scheme.qmax)
        return self.g.unview((q - self.z) * self.s, self.shape)

    def hard_codes(self) -> torch.Tensor:
        h = (self.v.detach() >= 0).float()
        q = torch.clamp(self.floor + h + self.z, self.scheme.qmin, self.scheme.qmax)
        return self.g.unview(q, self.shape).to(torch.int32)


def _collect(qmodel, reference, name, calib, cfg):
    layer = qmodel.get_submodule(name)
    xs, ys, n = [], [], 0
    for i, b in enumerate(batches(calib, cfg.max_batches, "AdaRound")):
        x = run_to(qmodel, name, b, output=False)
        check_finite(x, f"the input of '{name}'", "AdaRound", i)
        xs.append(weight_input(layer, x))
        ys.append(run_to(reference, name, b, output=True))
        n += x.shape[0]
        if n >= cfg.max_samples:
            break
    return torch.cat(xs)[: cfg.max_samples], torch.cat(ys)[: cfg.max_samples]


@torch.no_grad()
def _full_loss(layer, x, y, w, dim, chunk=64) -> float:
    total = 0.0
    for i in range(0, x.shape[0], chunk):
        out = layer_output(layer, x[i:i + chunk], w)
        total += float(recon_loss(out, y[i:i + chunk], dim)) * out.shape[0]
    return total / x.shape[0]


def optimize_layer(layer, w, x, y, cfg: AdaRound) -> tuple[torch.Tensor, float, float]:
    """(codes, loss RTN, loss of the codes returned); codes are RTN's when not better."""
    dim = channel_dim(layer)
    r = _Rounding(layer, w)
    opt = torch.optim.Adam([r.v], lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    b = min(cfg.batch_size, x.shape[0])
    for it in range(cfg.iterations):
        idx = torch.randint(0, x.shape[0], (b,), generator=gen)
        h = rectified_sigmoid(r.v)
        loss = recon_loss(layer_output(layer, x[idx], r.weight(h)), y[idx], dim)
        beta = _beta(cfg, it)
        if beta is not None and cfg.reg_weight > 0:
            loss = loss + cfg.reg_weight * (1 - (2 * h - 1).abs().pow(beta)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    rtn = layer.packed.codes()
    hard = r.hard_codes()
    l_rtn = _full_loss(layer, x, y, dequant_codes(layer, rtn), dim)
    l_ada = _full_loss(layer, x, y, dequant_codes(layer, hard), dim)
    return (hard, l_rtn, l_ada) if l_ada <= l_rtn else (rtn, l_rtn, l_rtn)


@register(AdaRound, "quantized", "adaround")
def _adaround(qmodel, cfg: AdaRound, calib, reference):
    layers = {m.name: m for m in wrapped_layers(qmodel)}
    applied, skipped = [], []
    # any granularity and layer op: no rows needed
    for name, layer in layers_in_order(qmodel, layers, calib, "AdaRound", packed_skip_reason,
                                       skipped):
        w = reference.get_submodule(name).weight.detach()
        x, y = _collect(qmodel, reference, name, calib, cfg)
        with torch.enable_grad():
            codes, l_rtn, l_new = optimize_layer(layer, w, x, y, cfg)
        kept = "learned rounding" if l_new < l_rtn else "round-to-nearest kept (not better)"
        changed = float((codes != layer.packed.codes()).float().mean())
        repack(layer, codes)
        applied.append(LayerResult(name, f"reconstruction {l_rtn:.4g} → {l_new:.4g}, {kept}; "
                                   f"{100 * changed:.1f}% of codes changed",
                                   {"loss_rtn": l_rtn, "loss_adaround": l_new,
                                    "codes_changed": changed, "samples": float(x.shape[0])}))
    return report_for("adaround", cfg, applied, skipped)
