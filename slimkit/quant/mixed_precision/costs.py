"""What a per-layer choice costs. A cost model is any callable
`cost(layer_name, scheme) -> float` (scheme: a LayerQuant, or None for float) — bytes here;
a measured per-layer latency table (slimkit/latency/table.py) plugs in the same way."""

from __future__ import annotations

from typing import Protocol

from torch import nn

from slimkit.quant.nonuniform import NonUniformScheme
from slimkit.quant.packing import packed_nbytes
from slimkit.quant.spec import LayerQuant

ACT_QUANTIZER_BYTES = 16  # scale (4) + zero point (4) + step counter (8) left after convert


class CostModel(Protocol):
    def __call__(self, layer_name: str, scheme: LayerQuant | None) -> float: ...


class SizeCost:
    """Bytes of one layer's state after sk.quantize with `scheme`: packed codes, their
    scales / zero points / codebook, the float bias, and the activation quantizers' buffers."""

    def __init__(self, model: nn.Module) -> None:
        self.modules = dict(model.named_modules())

    def __call__(self, layer_name: str, scheme: LayerQuant | None) -> float:
        m = self.modules[layer_name]
        bias = 0 if getattr(m, "bias", None) is None else m.bias.numel() * m.bias.element_size()
        extra = sum(b.numel() * b.element_size() for n, b in m.named_buffers(recurse=False))
        if scheme is None or scheme.weight is None:
            w = m.weight.numel() * m.weight.element_size()
            acts = 0 if scheme is None else ACT_QUANTIZER_BYTES * _acts(scheme)
            return float(w + bias + extra + acts)
        s = scheme.weight.scheme
        n = m.weight.numel()
        if isinstance(s, NonUniformScheme):
            params, zp = (2**s.bits if s.kind == "kmeans" else m.weight.shape[0]), 0
        else:
            params = s.granularity.num_params(m.weight.shape)
            zp = params * 4
        return float(packed_nbytes(n, s.bits) + params * 4 + zp + bias + extra
                     + ACT_QUANTIZER_BYTES * _acts(scheme))


def _acts(spec: LayerQuant) -> int:
    return sum(a is not None for a in (spec.input, spec.output))
