"""Compare a quantized model's weights with the float model it came from."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from slimkit.graph.fusion import fuse_conv_bn
from slimkit.quant.flows import quant_layers
from slimkit.quant.metrics import sqnr


@torch.no_grad()
def weight_sqnr(float_model: nn.Module, quant_model: nn.Module) -> dict[str, float]:
    """SQNR (dB) of each quantized layer's weight against the float weight it replaces
    (BN folded, as quantize() sees it); key '*' is all quantized weights together."""
    ref = copy.deepcopy(float_model).eval()
    fuse_conv_bn(ref)
    out, sig, noise = {}, 0.0, 0.0
    for layer in quant_layers(quant_model):
        if layer.packed is None and layer.weight_quantizer is None:
            continue
        w_f = ref.get_submodule(layer.name).weight.double()
        w_q = layer.weight.double()
        out[layer.name] = sqnr(w_f, w_q)
        sig += w_f.pow(2).sum().item()
        noise += (w_f - w_q).pow(2).sum().item()
    out["*"] = math.inf if noise == 0 else 10 * math.log10(sig / noise)
    return out
