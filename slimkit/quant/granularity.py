"""Granularity as types: which elements share one (scale, zero_point).

Every granularity knows how to *view* a tensor as (R, N) — R parameter rows, N elements
each — so statistics reduce over the last dim and the flat (R,) qparams broadcast back.
Keeping that in one place lets qscheme, observers and
packing agree on parameter shapes without string switches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from slimkit.errors import ConfigError


@dataclass(frozen=True)
class PerTensor:
    """One scale for the whole tensor."""

    def view(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(1, -1)  # (1, N)

    def unview(self, v: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        return v.reshape(shape)

    def num_params(self, shape: torch.Size) -> int:
        return 1

    def check(self, shape: torch.Size, name: str = "tensor") -> None:
        return None


@dataclass(frozen=True)
class PerChannel:
    """One scale per index along `axis` (output channels of a weight: axis 0)."""

    axis: int = 0

    def view(self, x: torch.Tensor) -> torch.Tensor:
        return x.movedim(self.axis, 0).reshape(x.shape[self.axis], -1)  # (C, N/C)

    def unview(self, v: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        moved = (shape[self.axis], *[d for i, d in enumerate(shape) if i != self.axis % len(shape)])
        return v.reshape(moved).movedim(0, self.axis)

    def num_params(self, shape: torch.Size) -> int:
        return shape[self.axis]

    def check(self, shape: torch.Size, name: str = "tensor") -> None:
        if not -len(shape) <= self.axis < len(shape):
            raise ConfigError(
                f"PerChannel(axis={self.axis}) does not fit {name} of shape {tuple(shape)}; "
                f"allowed axes: {-len(shape)}..{len(shape) - 1}"
            )


@dataclass(frozen=True)
class PerGroup:
    """One scale per `size` consecutive elements along the input dim.

    Weights are seen as (out, in·k·k): for Linear the groups run along in_features; for
    Conv along the flattened (in, kh, kw) fan-in, which is how GPTQ/AWQ-style kernels read them.
    """

    size: int

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 1:
            raise ConfigError(f"PerGroup.size={self.size!r} must be a positive int")

    def view(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x.shape)
        return x.reshape(-1, self.size)  # (out·in/size, size)

    def unview(self, v: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        return v.reshape(shape)

    def num_params(self, shape: torch.Size) -> int:
        return _numel(shape) // self.size

    def check(self, shape: torch.Size, name: str = "tensor") -> None:
        fan_in = _fan_in(shape)
        if fan_in % self.size:
            raise ConfigError(
                f"PerGroup(size={self.size}) does not divide the input dim {fan_in} of {name} "
                f"with shape {tuple(shape)}; use a divisor of {fan_in}"
            )


@dataclass(frozen=True)
class PerToken:
    """One scale per row of the last dim: dynamic activation quantization per token."""

    def view(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, x.shape[-1])  # (tokens, hidden)

    def unview(self, v: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        return v.reshape(shape)

    def num_params(self, shape: torch.Size) -> int:
        return _numel(shape) // shape[-1]

    def check(self, shape: torch.Size, name: str = "tensor") -> None:
        return None


Granularity = PerTensor | PerChannel | PerGroup | PerToken


def _numel(shape: torch.Size) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _fan_in(shape: torch.Size) -> int:
    return _numel(shape[1:]) if len(shape) > 1 else _numel(shape)
