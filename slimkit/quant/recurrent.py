"""Quantized recurrent layers (LSTM, GRU): int8 weights per gate row, float recurrence.

An RNN holds one weight matrix per layer and direction (`weight_ih_l0`, `weight_hh_l0`,
`weight_ih_l0_reverse`, …): each is quantized on its own, per output row (one row is one
gate unit), and packed; biases stay float (they are added, not multiplied). The hidden state
and the gate nonlinearities stay float: the recurrence feeds every step's output into the
next step, and per-step activation quantization would compound its error over the sequence.
This is weights-only: the plan says so, and the export runs the ONNX LSTM / GRU op in float
on the decoded weights (ONNX Runtime's DynamicQuantizeLSTM quantizes the activations per
call — a different numeric than the one simulated here).

The forward hands nn.LSTM / nn.GRU their (fake-)quantized weights through `_flat_weights`,
the list their forward passes to the fused kernel, so every option of the float layer
(batch_first, bidirectional, num_layers, proj_size, hx) works unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.quant.modules import DelegatesToLayer, register
from slimkit.quant.packed import PackedWeight
from slimkit.quant.quantizers import WeightFakeQuant
from slimkit.quant.spec import LayerQuant


class QuantRNN(DelegatesToLayer):
    takes_activations = False

    def __init__(self, layer: nn.RNNBase, spec: LayerQuant, name: str = "",
                 freeze_observers_after: int | None = None) -> None:
        super().__init__()
        self.layer, self.spec, self.name = layer, spec, name
        self.weight_names = [n for n in layer._flat_weights_names if n.startswith("weight")]
        self.weight_quantizer = nn.ModuleDict({
            n: WeightFakeQuant(spec.weight, getattr(layer, n).shape) for n in self.weight_names
        }) if spec.weight else None
        self.packed: nn.ModuleDict | None = None
        self.input_quantizer = self.output_quantizer = None

    def weights(self) -> dict[str, torch.Tensor]:
        """Each weight matrix as the layer computes with it (decoded or fake-quantized)."""
        if self.packed is not None:
            return {n: self.packed[n]() for n in self.weight_names}
        if self.weight_quantizer is None:
            return {n: getattr(self.layer, n) for n in self.weight_names}
        return {n: self.weight_quantizer[n](getattr(self.layer, n)) for n in self.weight_names}

    def flat_weights(self, dtype: torch.dtype) -> list[torch.Tensor]:
        w = self.weights()
        return [w[n].to(dtype) if n in w else getattr(self.layer, n)
                for n in self.layer._flat_weights_names]

    def forward(self, x, hx=None):
        rnn = self.layer
        saved = rnn._flat_weights
        data = x.data if isinstance(x, nn.utils.rnn.PackedSequence) else x
        rnn._flat_weights = self.flat_weights(data.dtype)
        try:
            return rnn(x, hx)
        finally:
            rnn._flat_weights = saved  # never keep decoded copies alive between calls

    def act_quantizers(self) -> list:
        return []

    def start_qat(self, learnable: bool) -> None:
        if self.weight_quantizer is not None and learnable:
            for n in self.weight_names:
                self.weight_quantizer[n].make_learnable(getattr(self.layer, n).detach())

    def freeze(self, structure_only: bool = False) -> None:
        """Pack each weight matrix and drop its float copy (the biases stay)."""
        if self.weight_quantizer is None:
            return
        packed = {}
        for n in self.weight_names:
            w = getattr(self.layer, n).detach()
            wq = self.weight_quantizer[n]
            qparams = None if wq.nonuniform else wq.qparams(w)
            packed[n] = PackedWeight.from_weight(w, self.spec.weight.scheme, qparams)
            del self.layer._parameters[n]
        self.packed = nn.ModuleDict(packed)
        self.weight_quantizer = None
        self.layer._init_flat_weights()  # forget the float tensors (they are gone)

    def extra_repr(self) -> str:
        return f"'{self.name}': {self.spec.describe()}, weights only, float recurrence"


register(nn.LSTM)(QuantRNN)
register(nn.GRU)(QuantRNN)
