"""Eager-mode layout: BN folded and channels-last (NHWC), oneDNN's preferred conv layout."""

from __future__ import annotations

import copy

import torch
from torch import nn

from slimkit.graph.fusion import fuse_conv_bn


class ChannelsLast(nn.Module):
    """Runs `model` with NHWC weights and activations; inputs are converted on the way in."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)

    def forward(self, *xs, **kw):
        xs = tuple(x.contiguous(memory_format=torch.channels_last)
                   if isinstance(x, torch.Tensor) and x.dim() == 4 else x for x in xs)
        return self.model(*xs, **kw)


def optimize_eager(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """A copy for eager inference: Conv/Linear-BN folded, and NHWC when `channels_last`
    (it helps 4-D conv nets on x86; benchmarks/cnn_int8.py measures it)."""
    m = copy.deepcopy(model).eval()
    fuse_conv_bn(m)
    has_conv = any(isinstance(x, nn.Conv2d) for x in m.modules())
    return ChannelsLast(m) if channels_last and has_conv else m
