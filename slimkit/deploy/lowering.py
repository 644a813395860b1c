"""Lower a converted slimkit model to a float model the ONNX exporter understands.

- each QuantLayer → an ExportLayer: the float op on the *dequantized* weight (so a plain
  export computes exactly what slimkit simulates), its weight named `<layer>.weight`;
- each activation quantizer → the slimkit::qdq op (ops.py), which the exporter emits as a
  QuantizeLinear → DequantizeLinear pair (bit-exact with slimkit's numerics);
- a `QDQLayer` record per layer keeps the integer codes and qparams that the ONNX rewrite
  (onnx_qdq.py) puts back as int8 initializers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from slimkit.deploy import ops  # noqa: F401 — registers torch.ops.slimkit.qdq
from slimkit.errors import SlimkitError
from slimkit.graph.modules import set_submodule
from slimkit.quant.algorithms.scaled import ScaledInputLinear
from slimkit.quant.granularity import PerChannel, PerGroup, PerTensor
from slimkit.quant.modules import QuantLayer, _no_fused_fast_path
from slimkit.quant.qscheme import QScheme
from slimkit.quant.quantizers import ActQuantizer
from slimkit.quant.recurrent import QuantRNN

_CONV = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d}


class ExportError(SlimkitError):
    """The model holds something the exporter cannot express faithfully."""


@dataclass
class QDQLayer:
    name: str
    codes: torch.Tensor  # int weight codes, the layer's weight shape
    scale: torch.Tensor  # (C_out,) or (1,)
    scheme: QScheme
    input_scale: float | None  # bias is quantized with input_scale · weight scale
    kind: str = "layer"  # layer (Conv / Gemm) | embedding (Gather)
    dynamic: QScheme | None = None  # activations quantized at run time with this scheme


class ExportFakeQuant(nn.Module):
    """A frozen per-tensor activation quantizer as the one op the exporter maps to Q/DQ."""

    def __init__(self, q: ActQuantizer, where: str) -> None:
        super().__init__()
        if not isinstance(q, ActQuantizer):
            raise ExportError(f"'{where}' quantizes activations with {type(q).__name__}; QDQ "
                              "export takes linear 8-bit activations (export it in float)")
        s = q.spec.scheme
        if q.spec.dynamic:
            raise ExportError(f"'{where}' quantizes activations dynamically per token; QDQ export "
                              "takes static per-tensor activations (use w8a8 / w4a8)")
        if not isinstance(s.granularity, PerTensor) or s.bits != 8:
            raise ExportError(f"'{where}' activations are {s.describe()}; QDQ export takes 8-bit "
                              "per-tensor activations")
        self.scale, self.zero_point = float(q.scale.item()), int(q.zero_point.item())
        self.qmin, self.qmax = s.qmin, s.qmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.slimkit.qdq(x, self.scale, self.zero_point, self.qmin, self.qmax)


def _frozen(q: ActQuantizer | None, where: str) -> ExportFakeQuant | None:
    return None if q is None else ExportFakeQuant(q, where)


class ExportLayer(nn.Module):
    """input Q/DQ → conv / linear on a named float weight → output Q/DQ."""

    def __init__(self, m: QuantLayer, name: str) -> None:
        super().__init__()
        layer = m.layer
        self.kind = "linear" if isinstance(layer, nn.Linear) else "embedding" if isinstance(
            layer, nn.Embedding) else "conv"
        if self.kind == "embedding" and layer.max_norm is not None:
            raise ExportError(f"'{name}': Embedding(max_norm=…) renormalises rows at run time; "
                              "it has no int8 Gather form")
        self.padding_idx = getattr(layer, "padding_idx", None)
        if self.kind == "conv" and getattr(layer, "padding_mode", "zeros") != "zeros":
            raise ExportError(f"'{name}': padding_mode={layer.padding_mode!r} is not exported")
        self.conv_args = {} if self.kind != "conv" else dict(
            stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
            groups=layer.groups)
        self.conv_fn = _CONV.get(type(layer))
        w = m.packed() if m.packed is not None else m.layer.weight
        self.weight = nn.Parameter(w.detach().clone())
        b = m.bias
        self.bias = None if b is None else nn.Parameter(b.detach().clone())
        # SmoothQuant / AWQ's explicit per-channel input scale (ScaledInputLinear): one Mul
        scale = getattr(layer, "input_scale", None)
        self.register_buffer("input_scale", None if scale is None else scale.detach().clone())
        # dynamic activations: the ONNX pass (onnx_dynamic.py) quantizes them at run time
        dyn = is_dynamic(m)
        if dyn and self.kind != "linear":
            raise ExportError(f"'{name}': dynamic activations export for Linear layers only, "
                              f"not {type(layer).__name__}")
        self.input_quantizer = None if dyn else _frozen(m.input_quantizer, f"{name}.input")
        self.output_quantizer = _frozen(m.output_quantizer, f"{name}.output")
        if m.input_quantizer is not None or m.output_quantizer is not None:
            self.register_forward_pre_hook(_no_fused_fast_path)  # keep the Q/DQ in the trace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_scale is not None:
            x = x * self.input_scale
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        if self.kind == "embedding":
            return F.embedding(x, self.weight, self.padding_idx)
        if self.kind == "linear" and x.dim() == 2:
            y = F.linear(x, self.weight, self.bias)
        elif self.kind == "linear":  # flatten leading dims: one Gemm on the named weight
            y = F.linear(x.reshape(-1, x.shape[-1]), self.weight, self.bias)
            y = y.reshape(*x.shape[:-1], y.shape[-1])
        else:
            y = self.conv_fn(x, self.weight, self.bias, **self.conv_args)
        return self.output_quantizer(y) if self.output_quantizer is not None else y


def is_dynamic(m: QuantLayer) -> bool:
    """Activations quantized at run time (only ActQuantizer has a dynamic mode; log2 and
    other level-set quantizers are static)."""
    q = m.input_quantizer
    return isinstance(q, ActQuantizer) and q.spec.dynamic


class ExportRNN(nn.Module):
    """A quantized LSTM / GRU as the float layer on its decoded weights: the ONNX LSTM / GRU
    op runs in float (see slimkit/quant/recurrent.py for why the recurrence stays float)."""

    def __init__(self, m: QuantRNN) -> None:
        super().__init__()
        self.rnn = copy.deepcopy(m.layer)
        for n, w in m.weights().items():
            self.rnn.register_parameter(n, nn.Parameter(w.detach().clone()))
        self.rnn._init_flat_weights()

    def forward(self, x, hx=None):
        return self.rnn(x, hx)


def lower(model: nn.Module) -> tuple[nn.Module, list[QDQLayer]]:
    """(float model with Q/DQ-exportable activations, the weight record per layer)."""
    model = copy.deepcopy(model).eval()
    layers: list[QDQLayer] = []
    done: list[str] = []  # wrappers already lowered: their quantizers went with them
    for name, m in list(model.named_modules()):
        if any(name.startswith(f"{d}.") for d in done):
            continue
        if isinstance(m, QuantLayer | QuantRNN):
            done.append(name)
        if isinstance(m, QuantRNN):
            if m.packed is None and m.weight_quantizer is not None:
                raise ExportError(f"'{name}' is not converted: call sk.convert(model) first")
            set_submodule(model, name, ExportRNN(m))
        elif isinstance(m, QuantLayer):
            if type(m.layer) not in (nn.Linear, ScaledInputLinear, nn.Embedding, *_CONV):
                raise ExportError(f"cannot export '{name}': quantized {type(m.layer).__name__} "
                                  "has no ONNX lowering; known: Linear, Conv1d, Conv2d, "
                                  "Embedding, LSTM, GRU")
            if m.packed is None and m.weight_quantizer is not None:
                raise ExportError(f"'{name}' is not converted: call sk.convert(model) first")
            if m.packed is not None:
                layers.append(_record(name, m))
            set_submodule(model, name, ExportLayer(m, name))
        elif isinstance(m, ActQuantizer) and name:
            set_submodule(model, name, ExportFakeQuant(m, name))
    model.requires_grad_(False)  # inference only
    return model, layers


def _record(name: str, m: QuantLayer) -> QDQLayer:
    s = m.packed.scheme
    if not isinstance(s, QScheme):
        raise ExportError(f"'{name}' holds {s.describe()} weights; QDQ export takes linear "
                          "weights (export non-uniform models in float, or use a linear scheme)")
    if not (s.symmetric and s.signed and s.bits <= 8):
        raise ExportError(f"'{name}': weights are {s.describe()}; QDQ export takes symmetric "
                          "signed ≤ 8-bit weights (zero point 0, what integer kernels expect)")
    if isinstance(s.granularity, PerGroup):
        if not (isinstance(m.layer, nn.Linear) and s.bits == 4 and m.input_quantizer is None
                and m.output_quantizer is None and s.granularity.size >= 16
                and s.granularity.size & (s.granularity.size - 1) == 0):
            raise ExportError(f"'{name}': {s.describe()} weights export only as 4-bit weight-only "
                              "Linear with a power-of-two group ≥ 16 (ORT's MatMulNBits)")
    elif not isinstance(s.granularity, (PerTensor, PerChannel)) or (
            isinstance(s.granularity, PerChannel) and s.granularity.axis != 0):
        raise ExportError(f"'{name}': {s.describe()} weights have no QDQ form; use per-tensor or "
                          "per-channel (axis 0)")
    if isinstance(m.layer, nn.Embedding) and not isinstance(s.granularity, PerChannel | PerTensor):
        raise ExportError(f"'{name}': Embedding weights {s.describe()} export per row or per "
                          "tensor only")
    dyn = m.input_quantizer.spec.scheme if is_dynamic(m) else None
    in_scale = None if m.input_quantizer is None or dyn is not None else float(
        m.input_quantizer.scale.item())
    kind = "embedding" if isinstance(m.layer, nn.Embedding) else "layer"
    return QDQLayer(name, m.packed.codes(), m.packed.params.clone(), s, in_scale, kind, dyn)
