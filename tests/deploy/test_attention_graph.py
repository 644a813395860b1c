"""The NaN guard torchlib puts after an attention softmax is dropped only where it can never
fire, and dropping it changes no output bit in ONNX Runtime."""

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper
from torch import nn

from slimkit.deploy.attention_graph import drop_nan_guards
from slimkit.deploy.onnx_export import to_onnx
from tests.arch.zoo import build


class BoolMaskAttention(nn.Module):
    """Packed qkv + SDPA with a bool padding mask (the form Hugging Face encoders pass):
    torchlib adds the guard after its softmax."""

    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(16, 48)

    def forward(self, x, keep):
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, 2, 8).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :].bool())


def _export():
    torch.manual_seed(0)
    with torch.no_grad():
        return torch.onnx.export(BoolMaskAttention().eval(),
                                 (torch.randn(2, 5, 16), torch.ones(2, 5, dtype=torch.long)),
                                 dynamo=True, verbose=False).model_proto


def _ops(proto) -> list[str]:
    return [n.op_type for n in proto.graph.node]


def _run(proto, *inputs):
    s = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in s.get_inputs()]
    return s.run(None, dict(zip(names, inputs, strict=True)))[0]


def test_guard_dropped_and_outputs_bit_identical():
    guarded = _export()
    assert "IsNaN" in _ops(guarded)  # the pattern this pass exists for is still exported
    clean = copy.deepcopy(guarded)
    assert drop_nan_guards(clean) == 1
    assert "IsNaN" not in _ops(clean)
    assert _ops(clean).count("Where") == _ops(guarded).count("Where") - 1
    onnx.checker.check_model(clean)
    x = np.random.default_rng(0).standard_normal((2, 5, 16)).astype(np.float32)
    for keep in ([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], [[0, 0, 0, 0, 0], [1, 0, 0, 0, 0]]):
        keep = np.array(keep, dtype=np.int64)  # the second: one row with every key masked
        a, b = _run(guarded, x, keep), _run(clean, x, keep)
        assert np.isfinite(b).all()
        np.testing.assert_array_equal(a, b)


def _guarded_softmax(mask_from: str) -> onnx.ModelProto:
    """Where(IsNaN(Softmax(x·xᵀ + m)), 0, ·) with m from a -inf constant, a float graph
    input, a Log, or two finite finfo.min masks summed (-inf by overflow): each can put -inf
    in a whole row, so the guard must stay."""
    f = onnx.TensorProto.FLOAT
    nodes = [helper.make_node("MatMul", ["x", "xt"], ["s"]),
             helper.make_node("Add", ["s", "m"], ["z"]),
             helper.make_node("Softmax", ["z"], ["p"], axis=-1),
             helper.make_node("IsNaN", ["p"], ["nan"]),
             helper.make_node("Where", ["nan", "zero", "p"], ["y"])]
    inputs = [helper.make_tensor_value_info(n, f, [2, 2]) for n in ("x", "xt")]
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    if mask_from == "inf_constant":
        inits.append(numpy_helper.from_array(np.array([0.0, -np.inf], np.float32), "m"))
    elif mask_from == "float_input":
        inputs.append(helper.make_tensor_value_info("m", f, [2, 2]))
    elif mask_from == "log":
        inputs.append(helper.make_tensor_value_info("w", f, [2, 2]))
        nodes.insert(0, helper.make_node("Log", ["w"], ["m"]))
    else:  # two padding masks, each Where(keep, 0, finfo.min), added
        inputs.append(helper.make_tensor_value_info("keep", onnx.TensorProto.BOOL, [2, 2]))
        low = np.array(np.finfo(np.float32).min, np.float32)
        inits.append(numpy_helper.from_array(low, "low"))
        nodes[:0] = [helper.make_node("Where", ["keep", "zero", "low"], ["m1"]),
                     helper.make_node("Add", ["m1", "m1"], ["m"])]
    out = [helper.make_tensor_value_info("out", f, [2, 2])]
    nodes.append(helper.make_node("Identity", ["y"], ["out"]))
    return helper.make_model(helper.make_graph(nodes, "g", inputs, out, inits))


@pytest.mark.parametrize("mask_from", ["inf_constant", "float_input", "log", "two_masks"])
def test_guard_kept_where_a_row_can_be_all_minus_inf(mask_from):
    proto = _guarded_softmax(mask_from)
    assert drop_nan_guards(proto) == 0 and "IsNaN" in _ops(proto)


def test_hugging_face_encoder_exports_without_guard():
    model, x = build("bert_tiny")
    proto = to_onnx(model.eval(), x)
    ops = _ops(proto)
    assert ops.count("Softmax") == 2 and "IsNaN" not in ops
    with torch.no_grad():
        want = model(x).numpy()
    got = _run(proto, x.numpy())
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
