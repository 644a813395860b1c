"""Put slimkit's integer weights into the exported ONNX graph.

The exporter already wrote activation QuantizeLinear → DequantizeLinear pairs (from
fake_quantize ops). Here, for each quantized layer (found by its weight `<name>.weight`):
  weight:  int8 codes initializer → DequantizeLinear (axis 0) → the Conv / Gemm
  bias:    int32 codes, scale = s_x · s_w (what QLinearConv / QGemm consume)
and identical Q/DQ pairs on one tensor are merged, so ONNX Runtime sees one quantized
tensor and folds each group into an integer kernel (QLinearConv, QGemm, QLinearAdd).
A 4-bit grouped weight-only Linear becomes ONNX Runtime's MatMulNBits (com.microsoft):
packed nibbles and per-block scales, dequantized block by block inside the kernel.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from slimkit.deploy.lowering import ExportError, QDQLayer
from slimkit.deploy.onnx_dynamic import dynamic_gemm, int8_gather
from slimkit.quant.granularity import PerGroup


class _Graph:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.g = model.graph
        self.inits = {i.name: i for i in self.g.initializer}
        self.nodes = list(self.g.node)

    def consumers(self, tensor: str) -> list[onnx.NodeProto]:
        return [n for n in self.nodes if tensor in n.input]

    def add_init(self, name: str, array: np.ndarray) -> str:
        t = numpy_helper.from_array(array, name)
        self.g.initializer.append(t)
        self.inits[name] = t
        return name

    def drop_init(self, name: str) -> None:
        if not self.consumers(name):
            self.g.initializer.remove(self.inits.pop(name))

    def const(self, name: str) -> np.ndarray | None:
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        for n in self.nodes:  # the exporter may emit scalars as Constant nodes
            if n.op_type == "Constant" and n.output[0] == name:
                return numpy_helper.to_array(n.attribute[0].t)
        return None

    def dequantize(self, name: str, codes: np.ndarray, scale: np.ndarray, axis: int) -> str:
        c = self.add_init(f"{name}_quantized", codes)
        s = self.add_init(f"{name}_scale", scale)
        z = self.add_init(f"{name}_zero_point", np.zeros_like(scale, dtype=codes.dtype))
        attrs = {"axis": axis} if scale.ndim else {}
        self.nodes.append(helper.make_node("DequantizeLinear", [c, s, z], [f"{name}_dq"],
                                           name=f"{name}.DequantizeLinear", **attrs))
        return f"{name}_dq"


def insert_qdq(model: onnx.ModelProto, layers: list[QDQLayer]) -> onnx.ModelProto:
    g = _Graph(model)
    for layer in layers:
        _weight(g, layer)
    if any(n.domain == "com.microsoft" for n in g.nodes):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    _merge_duplicate_qdq(g)
    del g.g.node[:]
    g.g.node.extend(_toposort(g.nodes, {i.name for i in g.g.input} | set(g.inits)))
    return model


def _weight(g: _Graph, L: QDQLayer) -> None:
    wname = f"{L.name}.weight"
    users = g.consumers(wname)
    want = ("Gather",) if L.kind == "embedding" else ("Conv", "Gemm")
    if not users and wname not in g.inits:
        return  # the exporter removed the layer: its output is unused, or folded to a constant
    if len(users) != 1 or users[0].op_type not in want:
        ops = [u.op_type for u in users]
        raise ExportError(f"'{L.name}': weight {wname!r} feeds {ops or 'nothing'} in the ONNX "
                          f"graph; expected one {' or '.join(want)}")
    node = users[0]
    if L.kind == "embedding":
        int8_gather(g, node, L)
        return
    if L.dynamic is not None:
        dynamic_gemm(g, node, L)
        return
    if isinstance(L.scheme.granularity, PerGroup):
        _matmul_nbits(g, node, L)
        return
    if node.op_type == "Gemm":
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transB", 0) != 1 or attrs.get("transA", 0) != 0:
            raise ExportError(f"'{L.name}': Gemm(transA={attrs.get('transA', 0)}, "
                              f"transB={attrs.get('transB', 0)}); expected transA=0, transB=1")
    w_scale = L.scale.numpy().astype(np.float32)
    w_scale = w_scale.reshape(()) if w_scale.size == 1 else w_scale
    node.input[1] = g.dequantize(wname, L.codes.numpy().astype(np.int8), w_scale, 0)
    g.drop_init(wname)
    if L.input_scale is not None and len(node.input) > 2 and node.input[2] in g.inits:
        bname = node.input[2]
        b = numpy_helper.to_array(g.inits[bname]).astype(np.float64)
        b_scale = (L.input_scale * np.broadcast_to(w_scale, b.shape)).astype(np.float32)
        q = np.clip(np.round(b / b_scale), -(2**31), 2**31 - 1).astype(np.int32)
        # named by the layer: the exporter shares one initializer between equal biases
        node.input[2] = g.dequantize(f"{L.name}.bias", q, b_scale, 0)
        g.drop_init(bname)


def _matmul_nbits(g: _Graph, gemm: onnx.NodeProto, L: QDQLayer) -> None:
    """Gemm(x, W, b) → MatMulNBits(x, nibbles, scales) (+ Add b). Codes c ∈ [-8, 7] are stored
    as c + 8 (the kernel's default zero point 8), low nibble first; accuracy_level 0 keeps
    float activations, as slimkit's weight-only simulation does."""
    n, k = L.codes.shape
    block = L.scheme.granularity.size
    blocks = -(-k // block)
    q = (L.codes.numpy().astype(np.int16) + 8).astype(np.uint8)  # (N, K)
    q = np.pad(q, ((0, 0), (0, blocks * block - k)), constant_values=8)
    packed = (q[:, 0::2] | (q[:, 1::2] << 4)).reshape(n, blocks, block // 2)
    wname = f"{L.name}.weight"
    b_name = g.add_init(f"{wname}_nbits", packed)
    s_name = g.add_init(f"{wname}_nbits_scale", L.scale.numpy().astype(np.float32).reshape(-1))
    out = gemm.output[0]
    has_bias = len(gemm.input) > 2 and gemm.input[2]
    mm_out = f"{L.name}.matmul_out" if has_bias else out
    g.nodes.append(helper.make_node(
        "MatMulNBits", [gemm.input[0], b_name, s_name], [mm_out], name=f"{L.name}.MatMulNBits",
        domain="com.microsoft", K=k, N=n, bits=4, block_size=block, accuracy_level=0))
    if has_bias:
        g.nodes.append(helper.make_node("Add", [mm_out, gemm.input[2]], [out],
                                        name=f"{L.name}.bias_add"))
    g.nodes.remove(gemm)
    g.drop_init(wname)


def _merge_duplicate_qdq(g: _Graph) -> None:
    """Two Q → DQ pairs on one tensor with equal qparams become one."""
    seen: dict[tuple, str] = {}
    drop: set[int] = set()
    rename: dict[str, str] = {}
    for q in [n for n in g.nodes if n.op_type == "QuantizeLinear"]:
        dqs = [n for n in g.consumers(q.output[0]) if n.op_type == "DequantizeLinear"]
        if len(dqs) != 1 or len(g.consumers(q.output[0])) != 1:
            continue
        s, z = g.const(q.input[1]), g.const(q.input[2]) if len(q.input) > 2 else None
        if s is None:
            continue
        key = (q.input[0], s.tobytes(), None if z is None else (z.tobytes(), z.dtype.str))
        if key in seen:
            rename[dqs[0].output[0]] = seen[key]
            drop.update((id(q), id(dqs[0])))
        else:
            seen[key] = dqs[0].output[0]
    g.nodes = [n for n in g.nodes if id(n) not in drop]
    for n in g.nodes:
        for i, name in enumerate(n.input):
            if name in rename:
                n.input[i] = rename[name]
    for o in g.g.output:
        if o.name in rename:
            raise ExportError(f"graph output {o.name!r} is a duplicate Q/DQ pair")


def _toposort(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    ready, out, pending = set(available) | {""}, [], list(nodes)
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.input):
                out.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            missing = sorted({i for n in rest for i in n.input if i not in ready})
            raise ExportError(f"ONNX graph has unresolved inputs after QDQ insertion: {missing}")
        pending = rest
    return out
