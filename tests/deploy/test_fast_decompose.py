"""sk.export's shortcut around torch.onnx's decomposition re-trace (deploy/fast_decompose.py):
where it applies, the ONNX file computes exactly what the exporter's own path gives."""

import contextlib
from collections import Counter

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

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


_SHAPE_PLUMBING = {"Reshape", "Shape", "Concat", "Unsqueeze", "Squeeze"}
CASES = {"digits float (batch norm)": lambda: _digits(False),
         "digits w8a8": lambda: _digits(True),
         # (benchmarks/export_speed.py checks the other families and torchvision's CNNs)
         **{n: (lambda n=n: zoo.build(n)) for n in ("gpt_block", "convnext", "bert_tiny")}}


@pytest.mark.parametrize("name", list(CASES))
def test_the_shortcut_applies_and_exports_the_same_model(name, monkeypatch):
    model, example = CASES[name]()
    taken = []
    monkeypatch.setattr(fd, "_apply", lambda gm, inplace, f=fd._apply: (taken.append(1),
                                                                         f(gm, inplace)))
    fast = to_onnx(model, example)
    assert taken, f"{name}: the decomposition re-trace ran"
    monkeypatch.setattr(oe, "skip_needless_decomposition", contextlib.nullcontext)
    slow = to_onnx(model, example)
    # The same compute ops; the shape plumbing may differ by an op or two (a view chain may
    # keep one Reshape more, and each onnxscript version's optimizer folds shapes its own way)
    ops = [Counter(n.op_type for n in p.graph.node if n.op_type not in _SHAPE_PLUMBING)
           for p in (fast, slow)]
    assert ops[0] == ops[1]
    for a, b in zip(_run(fast, example), _run(slow, example), strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_op_without_translation_takes_the_exporters_own_path(monkeypatch):
    model, example = zoo.build("unet")  # conv_transpose2d decomposes to convolution
    taken = []
    monkeypatch.setattr(fd, "_apply", lambda gm, inplace: taken.append(1))
    proto = to_onnx(model, example)
    assert not taken and any(n.op_type == "ConvTranspose" for n in proto.graph.node)


class _ResidualInplace(nn.Module):
    """torchvision's habits: ReLU(inplace=True) and `out += identity` (in-place in the
    exported program until the re-trace functionalizes them), adaptive average pooling."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        identity = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(identity))
        out += identity
        return self.pool(self.relu(out)).flatten(1)


class _SharedInplace(nn.Module):
    """An in-place op through a view changes its base, which is read later: only the re-trace
    (functionalization) gets that right."""

    def forward(self, x):
        y = x * 2
        y[:, 0].relu_()
        return y + 1


@pytest.mark.parametrize("cls", [_ResidualInplace, _SharedInplace])
def test_in_place_ops_export_as_the_exporter_would(cls, monkeypatch):
    torch.manual_seed(0)
    model, x = cls().eval(), torch.randn(2, 3, 8, 8)
    taken = []
    monkeypatch.setattr(fd, "_apply", lambda gm, inplace, f=fd._apply: (taken.append(1),
                                                                         f(gm, inplace)))
    fast = to_onnx(model, x)
    assert bool(taken) == (cls is _ResidualInplace)  # the shared one takes the full path
    monkeypatch.setattr(oe, "skip_needless_decomposition", contextlib.nullcontext)
    slow = to_onnx(model, x)
    with torch.no_grad():
        ref = model(x.clone()).numpy()
    for a, b in zip(_run(fast, x), _run(slow, x), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-5)
