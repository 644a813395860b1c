"""Where Q/DQ pairs sit in the exported graph, per runtime: the placement its fusions want.

A runtime runs a node on integers only when the graph *shows* it integers around that node:
ONNX Runtime's QDQ selectors fold `DQ → op → Q` groups into integer kernels (QLinearConv,
QLinearAdd, NhwcMaxPool on uint8 …); OpenVINO's low-precision transformations propagate
FakeQuantize through precision-preserving ops (MaxPool) and fuse it into the producing conv.
slimkit's simulation quantizes the *inputs* of layers and residual adds, so a MaxPool between
a conv and the next layer sees float on its input: measured on ResNet-18 (OpenVINO 2026.4, AMX)
the stem then ran conv → float output → MaxPool in fp32 (≈ 0.3 ms of 2.5 ms), where NNCF's
graph, quantized before the pool, runs it in int8.

Every pass here is exact with respect to the simulation — the file computes the same numbers,
only the runtime's kernels change: max-pooling commutes with a monotone quantizer
(maxpool(dq(q(x))) = dq(q(maxpool(x)))) and a Q/DQ pair on an already-quantized tensor is the
identity. `PLACEMENTS` names the passes each runtime gets; measured so far both runtimes want
the same ones (ORT's NhwcMaxPool needs Q/DQ on both sides, OpenVINO accepts that form too), so
one file serves both and the benchmark stage can run it anywhere.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx
from onnx import helper

from slimkit.errors import check_choice

Pass = Callable[[onnx.ModelProto], int]  # rewrites in place, returns how many sites changed
PASSES: dict[str, Pass] = {}


def qdq_pass(fn: Pass) -> Pass:
    PASSES[fn.__name__] = fn
    return fn


@qdq_pass
def quantize_pool_inputs(model: onnx.ModelProto) -> int:
    """MaxPool → Q → DQ  becomes  Q → DQ → MaxPool → Q → DQ (same scale and zero point):
    the pool and the layer before it run on integers."""
    g = model.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    producer = {o: n for n in g.node for o in n.output}
    changed = 0
    for pool in [n for n in g.node if n.op_type == "MaxPool" and len(n.output) == 1]:
        users = consumers.get(pool.output[0], [])
        if len(users) != 1 or users[0].op_type != "QuantizeLinear":
            continue
        src = producer.get(pool.input[0])
        if src is not None and src.op_type == "DequantizeLinear":
            continue  # already integer on its input
        q = users[0]
        dqs = consumers.get(q.output[0], [])
        if len(dqs) != 1 or dqs[0].op_type != "DequantizeLinear":
            continue
        pre_q = helper.make_node("QuantizeLinear", [pool.input[0], *q.input[1:]],
                                 [f"{q.output[0]}_before_pool"], name=f"{q.name}_before_pool")
        pre_dq = helper.make_node("DequantizeLinear", [pre_q.output[0], *dqs[0].input[1:]],
                                  [f"{dqs[0].output[0]}_before_pool"],
                                  name=f"{dqs[0].name}_before_pool")
        pre_dq.attribute.extend(dqs[0].attribute)
        pre_q.attribute.extend(q.attribute)
        pool.input[0] = pre_dq.output[0]
        at = list(g.node).index(pool)
        g.node.insert(at, pre_dq)
        g.node.insert(at, pre_q)
        changed += 1
    return changed


# runtime → passes, in order ("any": a file for every runtime)
PLACEMENTS: dict[str, tuple[str, ...]] = {
    "any": ("quantize_pool_inputs",),
    "ort": ("quantize_pool_inputs",),
    "openvino": ("quantize_pool_inputs",),
}


def place(model: onnx.ModelProto, runtime: str = "any") -> dict[str, int]:
    """Apply the runtime's passes to a QDQ model in place; {pass: sites changed}."""
    check_choice("export runtime", runtime, tuple(PLACEMENTS))
    return {name: PASSES[name](model) for name in PLACEMENTS[runtime]}


__all__ = ["PASSES", "PLACEMENTS", "place", "qdq_pass"]
