"""Logarithmic (power-of-two) activation quantization: weights linear, activations log2.

An activation x is stored as a sign and an exponent: x̂ = sign(x) · scale · 2^−k,
k ∈ {0, …, L−1}, or 0 — L = 2^bits − 1 levels for non-negative tensors (after ReLU), and
2^(bits−1) − 1 magnitudes with a sign bit otherwise. k rounds in the log domain,
k = round(−log2(|x| / scale)) (as slimkit's pow2 weights do); |x| below half the smallest
level becomes 0; |x| above scale clips to it. scale is max|x| over calibration, rounded up
to a power of two by default, so dequantization is a pure shift (Miyashita et al. 2016).

`apply(model, Log2Activations(bits), calib)` swaps the activation quantizers of a quantized
model (from sk.quantize: calibrated on calib, then frozen) or of a QAT model (from
sk.prepare_qat: seeded on calib, then trained — the range follows an EMA of max|x| while
training; gradients pass straight through inside the range, 0 outside). Dynamic quantizers
stay linear. ONNX has no log-domain quantize op: export such a model in float.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from slimkit.errors import CalibrationError, ConfigError
from slimkit.graph.modules import set_submodule
from slimkit.quant.algorithms.api import AlgoConfig, register, report_for
from slimkit.quant.algorithms.capture import batches, check_finite
from slimkit.quant.algorithms.common import wrapped_layers
from slimkit.quant.algorithms.report import LayerResult
from slimkit.quant.calibrate import call_model
from slimkit.quant.graph_quant import standalone_quantizers


@dataclass(frozen=True)
class Log2Activations(AlgoConfig):
    bits: int = 4
    pow2_scale: bool = True
    momentum: float = 0.01  # QAT: EMA step of max|x| per training call
    op_inputs: bool = True  # also the quantizers of residual adds / pools
    max_batches: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or not 2 <= self.bits <= 8:
            raise ConfigError(f"Log2Activations.bits={self.bits!r} must be an int in 2..8")
        if not 0.0 < self.momentum <= 1.0:
            raise ConfigError(f"Log2Activations.momentum={self.momentum} must be in (0, 1]")


def levels(bits: int, signed: bool) -> int:
    return 2 ** (bits - 1) - 1 if signed else 2**bits - 1


def log2_quantize(x: torch.Tensor, scale: float | torch.Tensor, bits: int,
                  signed: bool) -> torch.Tensor:
    """x → int32 codes: 0 is zero, ±(k + 1) is ±scale·2^−k."""
    n = levels(bits, signed)
    r = x.float().abs() / scale
    k = torch.round(-torch.log2(r.clamp(min=1e-30))).clamp(0, n - 1)
    zero = r < 2.0 ** -(n - 1) / 2
    mag = torch.where(zero, torch.zeros_like(k), k + 1)
    sign = torch.sign(x.float()) if signed else torch.ones_like(mag)
    return (sign * mag).to(torch.int32)


def log2_dequantize(codes: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    mag = codes.abs().float()
    val = torch.where(mag > 0, torch.exp2(-(mag - 1)), torch.zeros_like(mag))
    return torch.sign(codes.float()) * val * scale


def log2_fake_quantize(x: torch.Tensor, scale, bits: int, signed: bool) -> torch.Tensor:
    """Differentiable: straight-through inside [−scale, scale] (or [0, scale]), 0 outside."""
    q = log2_dequantize(log2_quantize(x, scale, bits, signed), scale).to(x.dtype)
    inside = (x.abs() <= scale) if signed else (x >= 0) & (x <= scale)
    return torch.where(inside, x + (q - x).detach(), q.detach())


class Log2Quantizer(nn.Module):
    """Drop-in for an ActQuantizer: observe (calibration), then fake-quantize in log2."""

    def __init__(self, cfg: Log2Activations, name: str = "") -> None:
        super().__init__()
        self.cfg, self.name = cfg, name
        self.register_buffer("amax", torch.zeros(()))
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("signed", torch.zeros((), dtype=torch.bool))
        self.observing, self.quantizing = True, False

    @property
    def scale(self) -> torch.Tensor:
        a = self.amax.clamp(min=1e-12)
        return torch.exp2(torch.ceil(torch.log2(a))) if self.cfg.pow2_scale else a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quantizing:
            if not torch.isfinite(x).all():
                raise CalibrationError(f"non-finite values (NaN/inf) reach '{self.name}'")
            self.amax = torch.maximum(self.amax, x.detach().abs().max().float())
            self.lo = torch.minimum(self.lo, x.detach().min().float())
            self.signed.fill_(bool(self.lo < 0))
            return x
        if self.training and self.observing:  # QAT: follow the range
            m = self.cfg.momentum
            self.amax += m * (x.detach().abs().max().float() - self.amax)
        return log2_fake_quantize(x, self.scale, self.cfg.bits, bool(self.signed))

    def start_qat(self, learnable: bool = False) -> None:
        self.quantizing, self.observing = True, True

    def freeze(self, structure_only: bool = False) -> None:
        self.quantizing, self.observing = True, False

    def extra_repr(self) -> str:
        sign = "signed" if bool(self.signed) else "unsigned"
        return f"log2 {self.cfg.bits}-bit {sign}, scale {float(self.scale):.4g}"


def _swap_all(model: nn.Module, cfg: Log2Activations):
    swapped, skipped = {}, []
    for layer in wrapped_layers(model):
        for where in ("input", "output"):
            q = getattr(layer, f"{where}_quantizer")
            if q is None:
                if where == "input":
                    skipped.append((layer.name, "no activation quantizer in the plan"))
                continue
            if q.spec.dynamic:
                skipped.append((f"{layer.name}.{where}", "dynamic per-call range: kept linear"))
                continue
            new = Log2Quantizer(cfg, f"{layer.name}.{where}")
            setattr(layer, f"{where}_quantizer", new)
            swapped[f"{layer.name}.{where}"] = new
    if cfg.op_inputs:
        names = {id(m): n for n, m in model.named_modules()}
        for q in standalone_quantizers(model):
            new = Log2Quantizer(cfg, names[id(q)])
            set_submodule(model, names[id(q)], new)
            swapped[names[id(q)]] = new
    return swapped, skipped


@register(Log2Activations, "quantized", "log2_activations")
def _log2(qmodel, cfg: Log2Activations, calib, reference):
    qat = qmodel.training or any(m.packed is None and m.weight_quantizer is not None
                                 for m in wrapped_layers(qmodel))
    swapped, skipped = _swap_all(qmodel, cfg)
    qmodel.eval()
    with torch.no_grad():
        for i, b in enumerate(batches(calib, cfg.max_batches, "Log2Activations")):
            for t in (b.values() if isinstance(b, dict) else b if isinstance(b, (tuple, list))
                      else [b]):
                if isinstance(t, torch.Tensor):
                    check_finite(t, "the model input", "Log2Activations", i)
            call_model(qmodel, b)
    for q in swapped.values():
        q.start_qat() if qat else q.freeze()
    if qat:
        qmodel.train()
    applied = [LayerResult(n, q.extra_repr(), {"scale": float(q.scale)})
               for n, q in swapped.items()]
    mode = "QAT: ranges follow an EMA while training" if qat else "frozen after calibration"
    paths = {id(m): n for n, m in qmodel.named_modules()}
    return report_for("log2_activations", cfg, applied, skipped, (mode,),
                      {"quantizers": [paths[id(q)] for q in swapped.values()]})
