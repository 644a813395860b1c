"""slimkit::qdq — a per-tensor quantize→dequantize op that torch.export can trace and the ONNX
exporter writes as QuantizeLinear → DequantizeLinear.

torch's own fake_quantize_per_tensor_affine has no fake-tensor kernel for its autograd
variant, so it exports only with static shapes; a custom op with a registered fake kernel
and an explicit ONNX translation exports under every setting.
"""

from __future__ import annotations

import torch


@torch.library.custom_op("slimkit::qdq", mutates_args=())
def qdq(x: torch.Tensor, scale: float, zero_point: int, qmin: int, qmax: int) -> torch.Tensor:
    # bit-exact with slimkit.quant.qscheme.fake_quantize (tested)
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, qmin, qmax)


@qdq.register_fake
def _qdq_fake(x, scale, zero_point, qmin, qmax):
    return torch.empty_like(x)


def qdq_onnx(x, scale: float, zero_point: int, qmin: int, qmax: int):
    """ONNX translation (onnxscript tracing): scale and zero point become initializers."""
    import onnx
    from onnxscript import opset20 as op

    dtype = onnx.TensorProto.UINT8 if qmin == 0 else onnx.TensorProto.INT8
    s = op.Constant(value=onnx.helper.make_tensor("scale", onnx.TensorProto.FLOAT, [], [scale]))
    z = op.Constant(value=onnx.helper.make_tensor("zero_point", dtype, [], [zero_point]))
    return op.DequantizeLinear(op.QuantizeLinear(x, s, z), s, z)


def translation_table() -> dict:
    return {torch.ops.slimkit.qdq.default: qdq_onnx}
