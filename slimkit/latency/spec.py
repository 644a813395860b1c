"""One conv / depthwise conv / linear layer as the latency table sees it, and the layers of a
model in call order (one forward pass with hooks)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from slimkit.batch import observe
from slimkit.errors import ConfigError, check_choice

KINDS = ("conv", "depthwise", "linear")


@dataclass(frozen=True)
class LayerSpec:
    """One conv / depthwise conv / linear layer and its input size (per sample)."""

    kind: str
    c_in: int
    c_out: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    h: int = 1  # input height / width; linear: h = rows per sample (T of a (N, T, F) input)
    w: int = 1
    bias: bool = False

    def __post_init__(self) -> None:
        check_choice("LayerSpec.kind", self.kind, KINDS)

    def key(self) -> str:
        k, s, p = self.kernel, self.stride, self.padding
        return (f"{self.kind}:{self.c_in}x{self.c_out}:k{k[0]}x{k[1]}:s{s[0]}x{s[1]}:"
                f"p{p[0]}x{p[1]}:g{self.groups}:{self.h}x{self.w}:b{int(self.bias)}")

    def out_hw(self) -> tuple[int, int]:
        return ((self.h + 2 * self.padding[0] - self.kernel[0]) // self.stride[0] + 1,
                (self.w + 2 * self.padding[1] - self.kernel[1]) // self.stride[1] + 1)

    def weight_count(self) -> int:
        return self.c_in // self.groups * self.c_out * self.kernel[0] * self.kernel[1]

    def macs(self) -> int:
        """Multiply-accumulates for one sample."""
        if self.kind == "linear":
            return self.c_in * self.c_out * self.h
        oh, ow = self.out_hw()
        return oh * ow * self.c_out * (self.c_in // self.groups) * self.kernel[0] * self.kernel[1]


def _pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, tuple | list) else (int(v), int(v))


def _conv_spec(m: nn.Conv2d, x: torch.Tensor) -> LayerSpec:
    if m.dilation != (1, 1) or m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise ConfigError(f"layer latency: Conv2d with dilation={m.dilation}, padding="
                          f"{m.padding!r}, padding_mode={m.padding_mode!r} is not supported; "
                          "the table covers zero-padded, undilated convs")
    dw = m.groups > 1 and m.groups == m.in_channels
    return LayerSpec("depthwise" if dw else "conv", m.in_channels, m.out_channels,
                     _pair(m.kernel_size), _pair(m.stride), _pair(m.padding), m.groups,
                     int(x.shape[2]), int(x.shape[3]), m.bias is not None)


def layer_specs(model: nn.Module, example_inputs) -> list[tuple[str, LayerSpec]]:
    """(module name, spec) of every Conv2d / Linear in `model`, in call order, from one forward
    pass (batch 1 is enough: the specs are per sample)."""
    found: list[tuple[str, LayerSpec]] = []
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, n=name: found.append((n, _conv_spec(mod, inp[0])))))
        elif isinstance(m, nn.Linear):
            def lin(mod, inp, out, n=name):
                # (N, …, F): the exporter flattens the leading dims into one Gemm's rows
                rows = inp[0][0].numel() // mod.in_features if inp[0].dim() > 2 else 1
                found.append((n, LayerSpec("linear", mod.in_features, mod.out_features,
                                           h=rows, bias=mod.bias is not None)))
            hooks.append(m.register_forward_hook(lin))
    observe(model, [example_inputs], hooks)
    return found


__all__ = ["KINDS", "LayerSpec", "layer_specs"]
