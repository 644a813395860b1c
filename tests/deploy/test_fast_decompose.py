"""sk.export's shortcut around torch.onnx's decomposition re-trace (deploy/fast_decompose.py):
where it applies, the ONNX file computes exactly what the exporter's own path gives."""

import contextlib
from collections import Counter

import numpy as np
import onnxruntime as ort
import pytest

import slimkit as sk
import slimkit.deploy.fast_decompose as fd
import slimkit.deploy.onnx_export as oe
from slimkit.deploy.onnx_export import to_onnx
from tests.arch import zoo


def _run(proto, example):
    s = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    xs = example if isinstance(example, tuple) else (example,)
    return s.run(None, {i.name: x.numpy() for i, x in zip(s.get_inputs(), xs, strict=True)})


def _digits(quantized: bool):
    from slimkit.data.digits import digits_tensors
    from slimkit.models import DigitsCNN

    x = digits_tensors()[0][:32][0]
    m = DigitsCNN().eval()
    return (sk.quantize(m, sk.QuantConfig.w8a8(), [x]) if quantized else m), x


CASES = {"digits float (batch norm)": lambda: _digits(False),
         "digits w8a8": lambda: _digits(True),
         **{n: (lambda n=n: zoo.build(n)) for n in ("gpt_block", "convnext", "bert_tiny",
                                                    "vit", "hand_attention")}}


@pytest.mark.parametrize("name", list(CASES))
def test_the_shortcut_applies_and_exports_the_same_model(name, monkeypatch):
    model, example = CASES[name]()
    taken = []
    monkeypatch.setattr(fd, "_rewrite_eval_batch_norm",
                        lambda gm, f=fd._rewrite_eval_batch_norm: (taken.append(1), f(gm)))
    fast = to_onnx(model, example)
    assert taken, f"{name}: the decomposition re-trace ran"
    monkeypatch.setattr(oe, "skip_needless_decomposition", contextlib.nullcontext)
    slow = to_onnx(model, example)
    ops = [Counter(n.op_type for n in p.graph.node if n.op_type != "Reshape")
           for p in (fast, slow)]
    assert ops[0] == ops[1]  # (a view chain may keep one Reshape more: same values)
    for a, b in zip(_run(fast, example), _run(slow, example), strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_op_without_translation_takes_the_exporters_own_path(monkeypatch):
    model, example = zoo.build("unet")  # conv_transpose2d decomposes to convolution
    taken = []
    monkeypatch.setattr(fd, "_rewrite_eval_batch_norm", lambda gm: taken.append(1))
    proto = to_onnx(model, example)
    assert not taken and any(n.op_type == "ConvTranspose" for n in proto.graph.node)
