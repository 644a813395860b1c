"""Helpers every algorithm shares: the float reference of a quantized model, what the
weight of a quantized layer multiplies, and re-packing a layer with chosen integer codes."""

from __future__ import annotations

import copy

import torch
from torch import nn

from slimkit.errors import ConfigError
from slimkit.graph.fusion import fuse_conv_bn
from slimkit.quant.algorithms.scaled import QuantScaledInputLinear
from slimkit.quant.modules import QuantLayer
from slimkit.quant.packed import PackedWeight
from slimkit.quant.packing import pack_bits
from slimkit.quant.qscheme import QScheme, dequantize
from slimkit.record import copy_model, note_source, record_of


def wrapped_layers(model: nn.Module) -> list[QuantLayer]:
    """The QuantLayer wrappers (Linear / Conv / Embedding) the algorithms refine."""
    return [m for m in model.modules() if isinstance(m, QuantLayer)]


def float_reference(model: nn.Module) -> nn.Module:
    """A BN-folded eval copy: its module names are the quantized model's layer names."""
    ref = copy.deepcopy(model).eval()
    fuse_conv_bn(ref)
    return ref


def float_copy(model: nn.Module) -> tuple[nn.Module, list[list[str]]]:
    """What a float-stage method works on: a copy (record kept), eval, BN folded (as
    sk.quantize would); returns the copy and the folded (layer, bn) pairs."""
    out = copy_model(model).eval()
    return out, [list(p) for p in fuse_conv_bn(out)]


def original_of(model: nn.Module) -> nn.Module | None:
    """The uncompressed model quantize() / prepare_qat() started from (its record's)."""
    rec = record_of(model, create=False)
    return None if rec is None else rec.original


def weight_input(layer: QuantLayer, x: torch.Tensor) -> torch.Tensor:
    """What the layer's weight multiplies for a raw input x: explicit input scale, then the
    input quantizer (frozen or not, as the layer runs)."""
    if isinstance(layer, QuantScaledInputLinear):
        x = x * layer.layer.input_scale
    if layer.input_quantizer is not None:
        x = layer.input_quantizer(x)
    return x


def layer_output(layer: QuantLayer, xw: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The layer's op before any output quantizer, on an input already through weight_input."""
    return layer.op(xw, w, layer.bias)


def channel_dim(layer: QuantLayer | nn.Module) -> int:
    inner = layer.layer if isinstance(layer, QuantLayer) else layer
    return -1 if isinstance(inner, nn.Linear) else 1


def linear_scheme(layer: QuantLayer) -> QScheme | None:
    """The packed weight's linear scheme, or None (not packed, or non-uniform)."""
    if layer.packed is None or not isinstance(layer.packed.scheme, QScheme):
        return None
    return layer.packed.scheme


def repack(layer: QuantLayer, codes: torch.Tensor) -> None:
    """Same scheme and qparams, new integer codes (weight shape)."""
    old = layer.packed
    s = old.scheme
    if codes.shape != old.shape:
        raise ConfigError(f"'{layer.name}': codes of shape {tuple(codes.shape)} do not fit the "
                          f"weight {tuple(old.shape)}")
    pw = PackedWeight(old.shape, s, old.params.numel())
    pw.packed.copy_(pack_bits(codes, s.bits, s.qmin))
    pw.params.copy_(old.params)
    pw.zero_point.copy_(old.zero_point)
    layer.packed = pw


def dequant_codes(layer: QuantLayer, codes: torch.Tensor) -> torch.Tensor:
    return dequantize(codes, layer.packed.params, layer.packed.zero_point, layer.packed.scheme)


def note_step(model: nn.Module, kind: str, config: dict, structure: dict, note: str,
              source: nn.Module | None = None) -> None:
    """One step in the model's record: what ran, with which config and structure change."""
    rec = record_of(model)
    if source is not None:
        note_source(rec, source)
    rec.add(kind, {"config": config, "structure": structure}, note)


def set_bias(layer: QuantLayer, delta: torch.Tensor) -> None:
    """bias += delta; a layer without a bias gets one (a new `layer.bias` state entry)."""
    inner = layer.layer
    with torch.no_grad():
        if inner.bias is None:
            inner.bias = nn.Parameter(delta.detach().clone().to(delta.dtype))
        else:
            inner.bias.add_(delta.to(inner.bias.dtype))
