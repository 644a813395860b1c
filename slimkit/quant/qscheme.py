"""Linear (uniform) quantization as pure functions.

quantize:    q = clamp(round(x · (1/s)) + z, qmin, qmax)
dequantize:  x̂ = (q − z) · s
Multiplying by the reciprocal (not dividing) is what ATen's fake_quantize kernels do, so
8-bit results here are bit-exact against torch.fake_quantize_per_{tensor,channel}_affine.
Arithmetic runs in float32 whatever the input dtype; results come back in the input dtype.
Qparams are flat (R,) tensors, R = the granularity's number of rows (see granularity.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from slimkit.errors import ConfigError, check_choice
from slimkit.quant.granularity import Granularity, PerChannel, PerGroup, PerTensor, PerToken

ALLOWED_BITS = (2, 3, 4, 5, 6, 7, 8, 16)
ROUNDINGS = ("nearest", "stochastic")
# Floor on scales so an all-zero tensor quantizes to its zero point instead of dividing by 0.
SCALE_EPS = 1e-10


@dataclass(frozen=True)
class QScheme:
    """How one tensor is linearly quantized."""

    bits: int = 8
    symmetric: bool = True
    signed: bool = True
    granularity: Granularity = field(default_factory=PerTensor)
    rounding: str = "nearest"

    def __post_init__(self) -> None:
        check_choice("QScheme.bits", self.bits, ALLOWED_BITS)
        check_choice("QScheme.rounding", self.rounding, ROUNDINGS)
        if not isinstance(self.granularity, (PerTensor, PerChannel, PerGroup, PerToken)):
            raise ConfigError(
                f"QScheme.granularity={self.granularity!r} must be PerTensor(), PerChannel(axis), "
                "PerGroup(size) or PerToken()"
            )

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1

    @property
    def code_dtype(self) -> torch.dtype:
        if self.bits == 16:
            return torch.int32
        return torch.int8 if self.signed else torch.uint8

    def describe(self) -> str:
        kind = "sym" if self.symmetric else "affine"
        sign = "s" if self.signed else "u"
        return f"{sign}int{self.bits} {kind} {_gran_name(self.granularity)}"

    def qparams(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(min, max) per row → (scale float32, zero_point int32), both flat (R,)."""
        lo = torch.clamp(lo.float(), max=0.0)  # the range must hold 0 exactly (padding, ReLU)
        hi = torch.clamp(hi.float(), min=0.0)
        if self.symmetric:
            amax = torch.maximum(-lo, hi) if self.signed else hi
            scale = amax / self.qmax
            zp = torch.zeros_like(scale, dtype=torch.int32)
        else:
            scale = (hi - lo) / (self.qmax - self.qmin)
            scale = torch.clamp(scale, min=SCALE_EPS)
            zp = torch.clamp(self.qmin - torch.round(lo / scale), self.qmin, self.qmax)
            zp = zp.to(torch.int32)
        return torch.clamp(scale, min=SCALE_EPS).reshape(-1), zp.reshape(-1)


def _gran_name(g: Granularity) -> str:
    if isinstance(g, PerChannel):
        return f"per-channel(axis={g.axis})"
    if isinstance(g, PerGroup):
        return f"per-group({g.size})"
    return "per-token" if isinstance(g, PerToken) else "per-tensor"


class _RoundSTE(torch.autograd.Function):
    """Round to nearest (ties to even, as torch.round) with an identity gradient."""

    @staticmethod
    def forward(ctx, v: torch.Tensor) -> torch.Tensor:
        return torch.round(v)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        return g


def round_values(
    v: torch.Tensor, rounding: str = "nearest", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Round with a straight-through gradient; stochastic rounding is unbiased: E[r] = v."""
    if rounding == "nearest":
        return _RoundSTE.apply(v)
    noise = torch.rand(v.shape, generator=generator, device=v.device, dtype=v.dtype)
    return v + (torch.floor(v + noise) - v).detach()


def _rows(x: torch.Tensor, g: Granularity, n_params: int) -> torch.Tensor:
    v = g.view(x.float())
    if v.shape[0] != n_params:
        raise ConfigError(
            f"{n_params} qparams do not fit {_gran_name(g)} on a tensor of shape {tuple(x.shape)} "
            f"({v.shape[0]} rows)"
        )
    return v


def quantize(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    scheme: QScheme,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Float tensor → integer codes (scheme.code_dtype) in x's shape."""
    v = _rows(x, scheme.granularity, scale.numel())
    q = _quantize_rows(v, scale, zero_point, scheme, generator)
    return scheme.granularity.unview(q, x.shape).to(scheme.code_dtype)


def dequantize(
    q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, scheme: QScheme
) -> torch.Tensor:
    """Integer codes → float32 tensor in q's shape."""
    v = _rows(q, scheme.granularity, scale.numel())
    x = (v - zero_point.float().reshape(-1, 1)) * scale.reshape(-1, 1)
    return scheme.granularity.unview(x, q.shape)


def fake_quantize(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    scheme: QScheme,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """dequantize(quantize(x)) in x's dtype, differentiable: straight-through inside the
    clipping range, zero gradient outside; gradients reach `scale` too (LSQ)."""
    v = _rows(x, scheme.granularity, scale.numel())
    s = scale.reshape(-1, 1)
    z = zero_point.float().reshape(-1, 1)
    q = _quantize_rows(v, s, z, scheme, generator)
    y = (q - z) * s
    return scheme.granularity.unview(y, x.shape).to(x.dtype)


def _quantize_rows(v, scale, zero_point, scheme, generator) -> torch.Tensor:
    # (R, N) float32 → (R, N) float32 holding integers
    s = scale.reshape(-1, 1)
    z = zero_point.float().reshape(-1, 1)
    r = round_values(v * torch.reciprocal(s), scheme.rounding, generator)
    return torch.clamp(r + z, scheme.qmin, scheme.qmax)


quantize_tensor = quantize  # the name exported at package level, where `quantize` is the model verb


def amin_amax(x: torch.Tensor, g: Granularity) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row min and max of x under granularity g, flat (R,)."""
    v = g.view(x.detach().float())
    return v.amin(dim=1), v.amax(dim=1)
