"""Reference emulation of x86 int8 dot products without VNNI, and a saturation check of an
exported graph — so a machine with VNNI can prove what a machine without it computes.

Without VNNI, ONNX Runtime's u8s8 GEMM (MLAS, AVX2) multiplies u8 activations by s8 weights
with `vpmaddubsw`: each pair of adjacent products along K is added in int16 *with saturation*,
then `vpmaddwd` widens the pair sums to int32 exactly. Signed (s8) activations take the same
path after a +128 shift to u8. Which elements pair up depends on how the kernel packs K, so the
check below is layout-free: it bounds every pair two weights of one output row could form.
VNNI (`vpdpbusd`) and AMX accumulate each product in int32 and never saturate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INT16_MAX = 32767
U8_MAX = 255


def u8s8_gemm_exact(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(M, K) uint8 × (N, K) int8 → (M, N) int32 with int32 accumulation (VNNI, AMX)."""
    return (a.astype(np.int64) @ w.astype(np.int64).T).astype(np.int32)


def u8s8_gemm_pairs(a: np.ndarray, w: np.ndarray, chunk: int = 64) -> np.ndarray:
    """(M, K) uint8 × (N, K) int8 → (M, N) int32 as `vpmaddubsw` + `vpmaddwd` compute it:
    products of K positions (2i, 2i+1) summed and clamped to int16, then summed in int32."""
    k = a.shape[1]
    if k % 2:  # the kernels pad K with zeros
        a = np.pad(a, ((0, 0), (0, 1)))
        w = np.pad(w, ((0, 0), (0, 1)))
    wi = w.astype(np.int32)
    out = np.empty((a.shape[0], w.shape[0]), dtype=np.int32)
    for s in range(0, a.shape[0], chunk):  # (chunk, N, K) products at a time
        p = a[s:s + chunk, None, :].astype(np.int32) * wi[None]
        pairs = np.clip(p[..., 0::2] + p[..., 1::2], -INT16_MAX - 1, INT16_MAX)
        out[s:s + chunk] = pairs.sum(-1, dtype=np.int64).astype(np.int32)
    return out


def worst_pair(w: np.ndarray) -> int:
    """Largest |a_i·w_i + a_j·w_j| any two weights of one row reach over u8 inputs a ≤ 255:
    the two largest same-sign magnitudes of the row, times 255. (N, K) int8 → int."""
    w = w.astype(np.int32).reshape(w.shape[0], -1)
    pos = -np.sort(-np.where(w > 0, w, 0), axis=1)[:, :2].sum(1)
    neg = -np.sort(-np.where(w < 0, -w, 0), axis=1)[:, :2].sum(1)
    return int(U8_MAX * max(pos.max(initial=0), neg.max(initial=0)))


@dataclass(frozen=True)
class Saturation:
    weight: str  # the int8 initializer
    op: str  # the Conv / Gemm / MatMul it feeds
    worst_pair: int  # largest pair sum over u8 inputs (saturates above 32,767)

    @property
    def saturates(self) -> bool:
        return self.worst_pair > INT16_MAX


def int8_weights(model) -> list[tuple[str, str, np.ndarray]]:
    """(initializer, consumer op, (N, K) codes) of every int8 weight that a DequantizeLinear
    feeds into a Conv / Gemm / MatMul whose other input is a quantized 8-bit activation, and
    of every int8 weight of a MatMulInteger / DynamicQuantizeMatMul."""
    from onnx import numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    out = []
    for node in g.node:
        # dynamic int8 (onnx_dynamic.py): the activations are quantized to u8 at run time and
        # the (K, N) int8 weight is read directly — the same u8s8 kernels, the same pairs
        if node.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") and \
                node.input[1] in inits:
            codes = numpy_helper.to_array(inits[node.input[1]])
            if codes.dtype == np.int8:
                out.append((node.input[1], node.op_type, codes.T.reshape(codes.shape[1], -1)))
            continue
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        wt = producer.get(node.input[1])
        if wt is None or wt.op_type != "DequantizeLinear" or wt.input[0] not in inits:
            continue
        if not _from_dequantize(node.input[0], producer):
            continue  # float activations: the runtime dequantizes and runs a float GEMM
        codes = numpy_helper.to_array(inits[wt.input[0]])
        if codes.dtype != np.int8:
            continue
        rows = codes.T if node.op_type == "MatMul" else codes  # MatMul: (K, N)
        out.append((wt.input[0], node.op_type, rows.reshape(rows.shape[0], -1)))
    return out


_LAYOUT_OPS = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity"}


def _from_dequantize(tensor: str, producer: dict) -> bool:
    """Whether `tensor` is a DequantizeLinear output, possibly behind layout-only ops (the
    runtime moves those past the DQ and keeps the consumer on integers)."""
    node = producer.get(tensor)
    while node is not None and node.op_type in _LAYOUT_OPS:
        node = producer.get(node.input[0])
    return node is not None and node.op_type == "DequantizeLinear"


def saturation_report(model) -> list[Saturation]:
    """Every int8 weight of an exported QDQ model (ModelProto or path) with its worst pair."""
    import onnx

    if not hasattr(model, "graph"):
        model = onnx.load(str(model))
    return [Saturation(name, op, worst_pair(rows)) for name, op, rows in int8_weights(model)]


__all__ = ["Saturation", "int8_weights", "saturation_report", "u8s8_gemm_exact",
           "u8s8_gemm_pairs", "worst_pair"]
