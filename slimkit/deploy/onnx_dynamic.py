"""ONNX forms of the layers whose activations are quantized at run time, and of int8 tables.

Dynamic Linear, per-token int8 symmetric activations (QuantConfig.dynamic()):
    amax = ReduceMax(|x|, last axis)            (T, 1)   as slimkit's qparams
    s    = max(amax / 127, 1e-10)               (T, 1)
    c    = clip(round(x · (1/s)), -128, 127)    int codes, bit-exact with slimkit's quantize
    u    = uint8(c + 128)                       the same codes, shifted: zero point 128 —
                                                one scalar, so ORT's fast u8s8 kernel runs it
    y    = float(MatMulInteger(u, Wᵀ, 128)) · s · s_w + b
The integer product is exact (int32), and the float epilogue is the order
slimkit.deploy.kernels.Int8DynamicLinear uses, so the two agree bit for bit.

Dynamic Linear, per-tensor uint8 affine activations (QuantConfig.dynamic(activations=
'per_tensor')): ONNX Runtime's fused DynamicQuantizeMatMul (com.microsoft) — the kernel
its own quantize_dynamic ends up running.

Embedding with int8 rows: Gather the codes and the row scales, multiply — never dequantize
the whole table per call.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from slimkit.deploy.lowering import ExportError, QDQLayer
from slimkit.quant.granularity import PerTensor, PerToken


def dynamic_gemm(g, gemm, L: QDQLayer) -> None:
    """Replace Gemm(x, W, b) (transB=1) with the integer subgraph of L's dynamic scheme."""
    attrs = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}
    if attrs.get("transB", 0) != 1 or attrs.get("transA", 0) != 0:
        raise ExportError(f"'{L.name}': Gemm(transA={attrs.get('transA', 0)}, "
                          f"transB={attrs.get('transB', 0)}); expected transA=0, transB=1")
    if L.codes.dim() != 2:
        raise ExportError(f"'{L.name}': dynamic export takes a 2-D Linear weight")
    s = L.dynamic
    x, out = gemm.input[0], gemm.output[0]
    bias = gemm.input[2] if len(gemm.input) > 2 and gemm.input[2] else None
    w_t = np.ascontiguousarray(L.codes.numpy().astype(np.int8).T)  # (K, N)
    w_scale = L.scale.numpy().astype(np.float32).reshape(-1)
    if w_scale.size == 1:
        w_scale = np.full(w_t.shape[1], w_scale[0], np.float32)
    p = L.name
    wq = g.add_init(f"{p}.weight_quantized_t", w_t)
    ws = g.add_init(f"{p}.weight_scale", w_scale)
    if isinstance(s.granularity, PerTensor) and not s.signed and not s.symmetric:
        wz = g.add_init(f"{p}.weight_zero_point", np.zeros(w_t.shape[1], np.int8))
        inputs = [x, wq, ws, wz] + ([bias] if bias else [])
        g.nodes.append(helper.make_node("DynamicQuantizeMatMul", inputs, [out],
                                        name=f"{p}.DynamicQuantizeMatMul",
                                        domain="com.microsoft"))
    elif isinstance(s.granularity, PerToken) and s.signed and s.symmetric and s.bits == 8:
        _per_token(g, p, x, wq, ws, bias, out)
    else:
        raise ExportError(f"'{L.name}': dynamic activations {s.describe()} have no ONNX form; "
                          "use QuantConfig.dynamic() (per-token int8) or "
                          "activations='per_tensor' (uint8)")
    g.nodes.remove(gemm)
    g.drop_init(f"{p}.weight")


def _per_token(g, p: str, x: str, wq: str, ws: str, bias: str | None, out: str) -> None:
    f32 = TensorProto.FLOAT

    def c(name, value, dtype=np.float32):
        return g.add_init(f"{p}.{name}", np.array(value, dtype=dtype))

    def node(op, inputs, name, **kw):
        g.nodes.append(helper.make_node(op, inputs, [f"{p}.{name}"], name=f"{p}.{name}", **kw))
        return f"{p}.{name}"

    axes = c("axes", [-1], np.int64)
    amax = node("ReduceMax", [node("Abs", [x], "abs"), axes], "amax", keepdims=1)  # (T, 1)
    scale = node("Max", [node("Div", [amax, c("qmax", 127.0)], "amax_q"), c("eps", 1e-10)],
                 "x_scale")
    v = node("Mul", [x, node("Reciprocal", [scale], "x_inv_scale")], "x_scaled")
    codes = node("Clip", [node("Round", [v], "x_round"), c("qmin", -128.0), c("qmax_c", 127.0)],
                 "x_codes")
    u8 = node("Cast", [node("Add", [codes, c("shift", 128.0)], "x_shifted")], "x_u8",
              to=TensorProto.UINT8)
    acc = node("MatMulInteger", [u8, wq, c("x_zero_point", 128, np.uint8)], "acc")
    y = node("Mul", [node("Cast", [acc], "acc_f", to=f32), scale], "y_x")
    if bias is None:
        g.nodes.append(helper.make_node("Mul", [y, ws], [out], name=f"{p}.y"))
        return
    y = node("Mul", [y, ws], "y_w")
    g.nodes.append(helper.make_node("Add", [y, bias], [out], name=f"{p}.y"))


def int8_gather(g, gather, L: QDQLayer) -> None:
    """Gather(W, ids) → Cast(Gather(codes, ids)) · Gather(row scales, ids)."""
    if gather.op_type != "Gather" or gather.input[0] != f"{L.name}.weight":
        raise ExportError(f"'{L.name}': the embedding table feeds {gather.op_type}; expected "
                          "Gather")
    p, ids, out = L.name, gather.input[1], gather.output[0]
    codes = g.add_init(f"{p}.weight_quantized", L.codes.numpy().astype(np.int8))
    scale = L.scale.numpy().astype(np.float32).reshape(-1, 1)  # (V, 1) or (1, 1)
    s = g.add_init(f"{p}.weight_row_scale", scale)
    rows = f"{p}.rows"
    g.nodes.append(helper.make_node("Gather", [codes, ids], [rows], name=f"{p}.gather_codes"))
    g.nodes.append(helper.make_node("Cast", [rows], [f"{rows}_f"], name=f"{p}.cast",
                                    to=TensorProto.FLOAT))
    if scale.size == 1:
        row_s = s
    else:
        row_s = f"{p}.rows_scale"
        g.nodes.append(helper.make_node("Gather", [s, ids], [row_s], name=f"{p}.gather_scale"))
    g.nodes.append(helper.make_node("Mul", [f"{rows}_f", row_s], [out], name=f"{p}.dequant"))
    g.nodes.remove(gather)
    g.drop_init(f"{p}.weight")
