"""The one signal-to-quantization-noise ratio every test and report uses."""

from __future__ import annotations

import math

import torch


def sqnr(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """10·log10(‖ref‖² / ‖ref − approx‖²) in dB; +inf when they are equal."""
    ref = reference.detach().double()
    noise = (ref - approx.detach().double()).pow(2).sum().item()
    signal = ref.pow(2).sum().item()
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)
