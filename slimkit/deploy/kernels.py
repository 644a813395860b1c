"""Integer kernels in PyTorch for Linear layers, each with the plain-PyTorch reference it is
tested against (tier 1: integer accumulation bit-exact; tier 2: SQNR floor on the output).

  Int8DynamicLinear     per-token int8 activations × per-channel int8 weights, int32
                        accumulation on torch._int_mm
  Int8WeightOnlyLinear  float activations × int8 weights (aten._weight_int8pack_mm)
  Int4WeightOnlyLinear  float activations × int4 grouped weights
                        (aten._weight_int4pack_mm_for_cpu)
`to_kernels(model)` swaps converted QuantLinear layers whose scheme one of these runs.
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.errors import ConfigError, SlimkitError
from slimkit.graph.modules import set_submodule
from slimkit.quant.granularity import PerChannel, PerGroup, PerToken
from slimkit.quant.modules import QuantLinear, _no_fused_fast_path
from slimkit.quant.qscheme import QScheme, amin_amax, quantize
from slimkit.record import ModelRecord, Step, copy_model, rebuilds, record_of

_TOKEN_INT8 = QScheme(8, symmetric=True, signed=True, granularity=PerToken())


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1])  # (tokens, in)


class _KernelLinear(nn.Module):
    def __init__(self, bias: torch.Tensor | None, out_features: int) -> None:
        super().__init__()
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self.out_features = out_features
        self.register_forward_pre_hook(_no_fused_fast_path)  # the kernel must run, not a fusion

    def _finish(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


class Int8DynamicLinear(_KernelLinear):
    def __init__(self, codes: torch.Tensor, scale: torch.Tensor, bias=None) -> None:
        super().__init__(bias, codes.shape[0])
        self.register_buffer("weight_t", codes.to(torch.int8).t().contiguous())  # (in, out)
        self.register_buffer("scale", scale.float().reshape(1, -1))  # (1, out)

    def quantize_input(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x2 = _flat(x).float()
        s, z = _TOKEN_INT8.qparams(*amin_amax(x2, _TOKEN_INT8.granularity))
        return quantize(x2, s, z, _TOKEN_INT8), s.reshape(-1, 1)  # int8 (T, in), (T, 1)

    def accumulate(self, q: torch.Tensor) -> torch.Tensor:
        return torch._int_mm(q, self.weight_t)  # (T, out) int32

    def reference_accumulate(self, q: torch.Tensor) -> torch.Tensor:
        return (q.long() @ self.weight_t.long()).to(torch.int32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, s = self.quantize_input(x)
        # the (tokens, out) result is memory-bound on CPU: convert once, scale in place,
        # never materialise the (tokens, out) outer product of the two scales
        y = self.accumulate(q).to(torch.float32)
        y.mul_(s).mul_(self.scale)
        if self.bias is not None:
            y.add_(self.bias)
        return y.reshape(*x.shape[:-1], self.out_features)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        q, s = self.quantize_input(x)
        return self._finish(x, self.reference_accumulate(q).float() * (s * self.scale))


class Int8WeightOnlyLinear(_KernelLinear):
    def __init__(self, codes: torch.Tensor, scale: torch.Tensor, bias=None) -> None:
        super().__init__(bias, codes.shape[0])
        self.register_buffer("weight", codes.to(torch.int8).contiguous())  # (out, in)
        self.register_buffer("scale", scale.float().reshape(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.aten._weight_int8pack_mm(_flat(x).float().contiguous(), self.weight,
                                               self.scale)
        return self._finish(x, y)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        return self._finish(x, _flat(x).float() @ (self.weight.float() * self.scale[:, None]).t())


class Int4WeightOnlyLinear(_KernelLinear):
    """Symmetric int4 codes c ∈ [-8, 7] per group of `group_size` inputs: w = c · s."""

    def __init__(self, codes: torch.Tensor, scale: torch.Tensor, group_size: int,
                 bias=None) -> None:
        super().__init__(bias, codes.shape[0])
        n, k = codes.shape
        self.group_size, self.in_features = group_size, k
        self.register_buffer("packed", torch.ops.aten._convert_weight_to_int4pack_for_cpu(
            (codes + 8).to(torch.int32).contiguous(), 1))  # (out, in/2) uint8
        s = scale.float().reshape(n, k // group_size).t()  # (groups, out)
        self.register_buffer("scales_and_zeros", torch.stack([s, torch.zeros_like(s)], -1)
                             .contiguous())  # (groups, out, 2); zero 0: symmetric codes
        self.register_buffer("codes", codes.to(torch.int8))  # kept for the reference only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(
            _flat(x).float().contiguous(), self.packed, self.group_size, self.scales_and_zeros)
        return self._finish(x, y)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        n, k = self.codes.shape
        s = self.scales_and_zeros[..., 0].t()  # (out, groups)
        w = (self.codes.float().reshape(n, -1, self.group_size) * s[..., None]).reshape(n, k)
        return self._finish(x, _flat(x).float() @ w.t())


INT4_GROUPS = (32, 64, 128, 256)


def kernel_for(layer: QuantLinear) -> nn.Module | None:
    """The integer kernel that runs this converted layer's scheme exactly, or None."""
    if layer.packed is None or not isinstance(layer.packed.scheme, QScheme):
        return None
    w, inp, bias = layer.packed.scheme, layer.spec.input, layer.bias
    codes, scale = layer.packed.codes(), layer.packed.params
    if not (w.symmetric and w.signed) or layer.output_quantizer is not None:
        return None
    per_channel = isinstance(w.granularity, PerChannel) and w.granularity.axis == 0
    if inp is not None:
        if inp.dynamic and inp.scheme == _TOKEN_INT8 and per_channel and w.bits in (7, 8):
            return Int8DynamicLinear(codes, scale, bias)
        return None
    if per_channel and w.bits == 8:
        return Int8WeightOnlyLinear(codes, scale, bias)
    if (isinstance(w.granularity, PerGroup) and w.bits == 4
            and w.granularity.size in INT4_GROUPS and codes.shape[1] % w.granularity.size == 0):
        return Int4WeightOnlyLinear(codes, scale, w.granularity.size, bias)
    return None


def to_kernels(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Swap every converted QuantLinear an integer kernel can run; the swapped layers are in
    the record (the 'kernels' step's config["layers"]). None to swap is a ConfigError."""
    model = model if inplace else copy_model(model)
    swapped = _swap_kernels(model, None)
    if not swapped:
        raise ConfigError("to_kernels: no converted Linear layer of this model has a PyTorch "
                          "integer kernel (they run dynamic int8 and 4/8-bit weight-only "
                          "schemes; static activations stay in the simulation)")
    record_of(model).add("kernels", {"layers": swapped},
                         f"{len(swapped)} Linear layer(s) on PyTorch integer kernels")
    return model


def _swap_kernels(model: nn.Module, only: list[str] | None) -> list[str]:
    swapped = []
    for name, m in list(model.named_modules()):
        # exactly QuantLinear: a subclass may carry an input scale the kernels do not apply
        if type(m) is QuantLinear and (only is None or name in only):
            k = kernel_for(m)
            if k is not None:
                set_submodule(model, name, k)
                swapped.append(name)
    return swapped


@rebuilds("kernels")
def _rebuild(model: nn.Module, step: Step, rec: ModelRecord) -> nn.Module:
    swapped = _swap_kernels(model, step.config["layers"])
    if swapped != step.config["layers"]:
        missing = sorted(set(step.config["layers"]) - set(swapped))
        raise SlimkitError(f"cannot rebuild the integer kernels of {missing}")
    return model
