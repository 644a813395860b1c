"""One-layer ONNX graphs for the latency table, built directly with onnx.helper (the dynamo
exporter costs ~0.6 s per layer, which would dominate a sweep).

fp32: the Conv / Gemm node the exporter writes. int8: the same node in slimkit's QDQ form —
uint8 activation Q → DQ on the input, int8 per-channel weight codes behind a DequantizeLinear,
an int32 bias, Q → DQ on the output — which ONNX Runtime folds into QLinearConv / QGemm and
OpenVINO into an int8 convolution, as it does inside an exported network.
"""

from __future__ import annotations

import numpy as np

from slimkit.deploy.versions import OPSET, fit
from slimkit.errors import check_choice
from slimkit.latency.spec import LayerSpec

PRECISIONS = ("fp32", "int8")
_X_SCALE, _Y_SCALE, _ZP = 0.05, 0.1, 128  # any valid qparams: timing does not depend on them


def shapes(spec: LayerSpec, batch: int) -> tuple[list[int], list[int]]:
    """(input shape, output shape) of the layer at `batch`."""
    if spec.kind == "linear":  # h: rows per sample (tokens of a (N, T, F) input), flattened
        return [batch * spec.h, spec.c_in], [batch * spec.h, spec.c_out]
    return [batch, spec.c_in, spec.h, spec.w], [batch, spec.c_out, *spec.out_hw()]


def _node(spec: LayerSpec, x: str, w: str, b: str | None, y: str):
    from onnx import helper

    inputs = [x, w] + ([b] if b else [])
    if spec.kind == "linear":
        return helper.make_node("Gemm", inputs, [y], transB=1)
    p = spec.padding
    return helper.make_node("Conv", inputs, [y], kernel_shape=list(spec.kernel),
                            strides=list(spec.stride), pads=[p[0], p[1], p[0], p[1]],
                            group=spec.groups)


def _qdq(name: str, src: str, scale: str, zp: str) -> list:
    from onnx import helper

    return [helper.make_node("QuantizeLinear", [src, scale, zp], [f"{name}_q"]),
            helper.make_node("DequantizeLinear", [f"{name}_q", scale, zp], [f"{name}_dq"])]


def layer_onnx(spec: LayerSpec, batch: int, precision: str = "fp32") -> bytes:
    """A one-node ONNX model of `spec` (random weights; timing does not depend on them)."""
    from onnx import TensorProto, helper, numpy_helper


    check_choice("layer precision", precision, PRECISIONS)
    rng = np.random.default_rng(0)
    x_shape, y_shape = shapes(spec, batch)
    w_shape = [spec.c_out, spec.c_in] if spec.kind == "linear" else \
        [spec.c_out, spec.c_in // spec.groups, *spec.kernel]
    inits, nodes = [], []
    if precision == "fp32":
        inits.append(numpy_helper.from_array(
            rng.standard_normal(w_shape).astype(np.float32), "W"))
        if spec.bias:
            inits.append(numpy_helper.from_array(np.zeros(spec.c_out, np.float32), "B"))
        nodes.append(_node(spec, "x", "W", "B" if spec.bias else None, "y"))
    else:
        w_scale = np.full(spec.c_out, 0.01, np.float32)  # per output channel (axis 0)
        inits += [numpy_helper.from_array(np.float32(_X_SCALE), "sx"),
                  numpy_helper.from_array(np.float32(_Y_SCALE), "sy"),
                  numpy_helper.from_array(np.uint8(_ZP), "zx"),
                  numpy_helper.from_array(rng.integers(-64, 64, w_shape, dtype=np.int8), "Wq"),
                  numpy_helper.from_array(w_scale, "sw"),
                  numpy_helper.from_array(np.zeros(spec.c_out, np.int8), "zw")]
        nodes += _qdq("x", "x", "sx", "zx")
        nodes.append(helper.make_node("DequantizeLinear", ["Wq", "sw", "zw"], ["W"], axis=0))
        if spec.bias:
            inits += [numpy_helper.from_array(np.zeros(spec.c_out, np.int32), "Bq"),
                      numpy_helper.from_array((w_scale * _X_SCALE).astype(np.float32), "sb"),
                      numpy_helper.from_array(np.zeros(spec.c_out, np.int32), "zb")]
            nodes.append(helper.make_node("DequantizeLinear", ["Bq", "sb", "zb"], ["B"],
                                          axis=0))
        nodes.append(_node(spec, "x_dq", "W", "B" if spec.bias else None, "y_f"))
        nodes += _qdq("y", "y_f", "sy", "zx")
        nodes.append(helper.make_node("Identity", ["y_dq"], ["y"]))
    graph = helper.make_graph(
        nodes, "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    return fit(model).SerializeToString()


__all__ = ["PRECISIONS", "layer_onnx", "shapes"]
