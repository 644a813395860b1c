"""Quantized layers: input quantizer → the float op on a quantized weight → output quantizer.

A wrapper keeps the original float layer as `.layer` (its bias and hyper-parameters) and
only swaps where the weight comes from: `weight_quantizer` while preparing / training,
`packed` once converted. New layer types plug in at one place: `@register(FloatType)`.

A wrapper stands in for the layer wherever PyTorch or user code inspects it: `weight` and
`bias` are the tensors the wrapper computes with, and any other attribute (in_features,
kernel_size, padding_idx, …) is read from the wrapped layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slimkit.quant.packed import PackedWeight
from slimkit.quant.quantizers import ActQuantizer, WeightFakeQuant
from slimkit.quant.spec import LayerQuant

QUANT_MODULES: dict[type[nn.Module], type[nn.Module]] = {}


def register(float_type: type[nn.Module]):
    def wrap(cls):
        QUANT_MODULES[float_type] = cls
        return cls

    return wrap


def _no_fused_fast_path(module: nn.Module, args) -> None:
    """A no-op pre-hook. PyTorch's fused inference kernels (nn.TransformerEncoderLayer's
    fast path) read `linear.weight` and skip the layer's forward — and with it the activation
    quantizers; a forward hook anywhere in the block is the documented switch that keeps
    them on the modules' own forwards, so the simulation is what runs."""
    return None


class DelegatesToLayer(nn.Module):
    """A wrapper that answers for its float `layer`: attributes it does not have itself
    (in_features, kernel_size, hidden_size, …) are the wrapped layer's, as PyTorch and user
    code expect of the module they replaced."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            layer = self.__dict__["_modules"].get("layer")
            if layer is None or name.startswith("__"):
                raise
            return getattr(layer, name)


class QuantLayer(DelegatesToLayer):
    # False: the layer's inputs are not activations (an Embedding's indices): weights only
    takes_activations = True

    def __init__(
        self,
        layer: nn.Module,
        spec: LayerQuant,
        name: str = "",
        freeze_observers_after: int | None = None,
    ) -> None:
        super().__init__()
        self.layer, self.spec, self.name = layer, spec, name
        self.weight_quantizer = (
            WeightFakeQuant(spec.weight, layer.weight.shape) if spec.weight else None
        )
        self.packed: PackedWeight | None = None

        def act(a, where):
            return ActQuantizer(a, f"{name}.{where}", freeze_observers_after) if a else None

        self.input_quantizer = act(spec.input, "input")
        self.output_quantizer = act(spec.output, "output")
        if self.input_quantizer is not None or self.output_quantizer is not None:
            self.register_forward_pre_hook(_no_fused_fast_path)

    def float_weight(self) -> torch.Tensor:
        return self.layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.layer.bias

    @property
    def weight(self) -> torch.Tensor:
        """The weight this layer computes with: decoded codes once converted, fake-quantized
        while preparing / training."""
        if self.packed is not None:
            return self.packed()
        w = self.float_weight()
        return self.weight_quantizer(w) if self.weight_quantizer is not None else w

    def op(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        w = self.weight  # decoded codes are float32; a float64 model computes in float64
        y = self.op(x, w.to(x.dtype) if x.is_floating_point() else w, self.bias)
        return self.output_quantizer(y) if self.output_quantizer is not None else y

    def act_quantizers(self) -> list[ActQuantizer]:
        return [q for q in (self.input_quantizer, self.output_quantizer) if q is not None]

    def start_qat(self, learnable: bool) -> None:
        """Switch from observing to fake-quantizing; with LSQ, scales become parameters."""
        if self.weight_quantizer is not None and learnable:
            self.weight_quantizer.make_learnable(self.float_weight().detach())
        for q in self.act_quantizers():
            q.start_qat(learnable)

    def freeze(self, structure_only: bool = False) -> None:
        """Pack the weight into integer codes, fix activation qparams, drop float copies.
        structure_only: the frozen modules and buffer shapes, values to be loaded."""
        if self.weight_quantizer is not None:
            w = self.float_weight().detach()
            wq = self.weight_quantizer
            qparams = None if wq.nonuniform else wq.qparams(w)
            self.packed = PackedWeight.from_weight(w, self.spec.weight.scheme, qparams)
            del self.layer.weight
            self.weight_quantizer = None
        for q in self.act_quantizers():
            q.freeze(structure_only)

    def extra_repr(self) -> str:
        return f"'{self.name}': {self.spec.describe()}"


@register(nn.Linear)
class QuantLinear(QuantLayer):
    def op(self, x, w, b):
        return F.linear(x, w, b)


@register(nn.Conv1d)
class QuantConv1d(QuantLayer):
    def op(self, x, w, b):
        return self.layer._conv_forward(x, w, b)


@register(nn.Conv2d)
class QuantConv2d(QuantLayer):
    def op(self, x, w, b):
        return self.layer._conv_forward(x, w, b)


@register(nn.Embedding)
class QuantEmbedding(QuantLayer):
    """Rows of an int8 (per-row) table; indices are not activations, so weights only."""

    takes_activations = False

    def op(self, x, w, b):
        e = self.layer
        return F.embedding(x, w, e.padding_idx, e.max_norm, e.norm_type, e.scale_grad_by_freq,
                           e.sparse)

    @property
    def bias(self) -> None:
        return None


class QuantConvBn(QuantLayer):
    """Conv followed by BatchNorm, trained with BN folded into the quantized weight.

    Training (Jacob et al. 2018, §3.2): the weight is scaled by γ/σ_running before it is
    fake-quantized, the conv output is scaled back, and the BN module still normalises with
    batch statistics and updates its running ones. After `freeze_bn_after` steps BN uses the
    running statistics, which makes the forward exactly the folded conv that will be deployed.
    """

    def __init__(self, conv, bn, spec, name="", freeze_observers_after=None,
                 freeze_bn_after: int | None = None):
        super().__init__(conv, spec, name, freeze_observers_after)
        self.bn = bn
        self.freeze_bn_after = freeze_bn_after
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def _fold_factor(self) -> torch.Tensor:
        bn = self.bn
        gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
        return gamma / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)

    def float_weight(self) -> torch.Tensor:
        f = self._fold_factor()
        return self.layer.weight * f.reshape(-1, *[1] * (self.layer.weight.dim() - 1))

    def folded_bias(self) -> torch.Tensor:
        bn = self.bn
        b = self.layer.bias if self.layer.bias is not None else torch.zeros_like(bn.running_mean)
        beta = bn.bias if bn.affine else torch.zeros_like(b)
        return beta + (b - bn.running_mean) * self._fold_factor()

    @property
    def bn_frozen(self) -> bool:
        return self.freeze_bn_after is not None and int(self.steps) >= self.freeze_bn_after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.steps += 1
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        bn = self.bn
        shape = (1, -1) + (1,) * (x.dim() - 2)
        y = self.layer._conv_forward(x, self.weight, None) / self._fold_factor().reshape(shape)
        if self.layer.bias is not None:
            y = y + self.layer.bias.reshape(shape)
        y = F.batch_norm(
            y, bn.running_mean, bn.running_var, bn.weight, bn.bias,
            training=self.training and not self.bn_frozen, momentum=bn.momentum or 0.1, eps=bn.eps,
        )
        return self.output_quantizer(y) if self.output_quantizer is not None else y

    def to_conv(self) -> QuantLayer:
        """The deployable layer: a quantized conv with BN folded into weight and bias."""
        conv = self.layer
        folded_w = self.float_weight().detach()
        folded_b = self.folded_bias().detach()
        conv.weight = nn.Parameter(folded_w)
        conv.bias = nn.Parameter(folded_b)
        out = QUANT_MODULES[type(conv)](conv, self.spec, self.name)
        # keep what QAT learned: observers' ranges and any LSQ scales
        out.weight_quantizer = self.weight_quantizer
        out.input_quantizer, out.output_quantizer = self.input_quantizer, self.output_quantizer
        return out
