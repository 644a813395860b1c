"""An explicit per-input-channel scale in front of a Linear: y = linear(x · s, W, b).

SmoothQuant and AWQ move range between a Linear's input and its weight: W' = W · diag(1/s),
x' = x · diag(s). Where the producer of x cannot absorb the scale (in post-LayerNorm BERT
every candidate LayerNorm output also feeds a residual add, and GELU is not homogeneous),
the scale stays an op of its own: the float function is unchanged, quantization sees x · s
and W / s, and ONNX export writes it as one Mul before the Gemm / MatMulNBits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slimkit.quant.modules import QuantLinear, register


class ScaledInputLinear(nn.Linear):
    """A Linear whose input is multiplied per channel by `input_scale` (in_features,)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.register_buffer("input_scale", torch.ones(in_features))

    @classmethod
    @torch.no_grad()
    def wrap(cls, linear: nn.Linear, s: torch.Tensor) -> ScaledInputLinear:
        """Same function as `linear`: input × s, weight columns ÷ s. s: (in_features,) > 0."""
        out = cls(linear.in_features, linear.out_features, linear.bias is not None)
        out = out.to(linear.weight.dtype)
        prev = getattr(linear, "input_scale", torch.ones_like(s))
        out.input_scale.copy_(prev * s)
        out.weight.copy_(linear.weight / s.reshape(1, -1))  # (out, in)
        if linear.bias is not None:
            out.bias.copy_(linear.bias)
        return out.train(linear.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x * self.input_scale, self.weight, self.bias)


@register(ScaledInputLinear)
class QuantScaledInputLinear(QuantLinear):
    """The input scale runs before the input quantizer: what is quantized is x · s."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x * self.layer.input_scale)


def input_scale(layer: nn.Module) -> torch.Tensor | None:
    return getattr(layer, "input_scale", None)
