"""ONNX export: float fidelity, QDQ round trips in ONNX Runtime, graph and file invariants."""

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

import slimkit as sk
from slimkit.deploy import ExportError, check_parity, session
from slimkit.deploy.runtimes import RuntimeUnavailable
from slimkit.quant import ActQuant, LayerQuant, PerTensor, QScheme, WeightQuant
from slimkit.quant.spec import uint8_act
from tests.deploy.nets import MLP


def _ort(path, x):
    return session(path).run((x,))


def _optimized_ops(path, tmp_path) -> list[str]:
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]


def test_float_export_matches_eager_with_a_dynamic_batch(tiny_resnet, tmp_path):
    p = sk.export(tiny_resnet, torch.randn(2, 3, 32, 32), tmp_path / "f.onnx")
    for batch in (1, 5):  # exported at batch 2; the batch dim is dynamic
        x = torch.randn(batch, 3, 32, 32)
        np.testing.assert_allclose(_ort(p, x), tiny_resnet(x).detach().numpy(), atol=1e-4)


class _One(nn.Module):
    """A single layer with an 8-bit output quantizer: its output lies on a known grid."""

    def __init__(self, layer: nn.Module, flatten: bool = False):
        super().__init__()
        self.layer, self.flatten = layer, flatten

    def forward(self, x):
        return self.layer(x)


LAYERS = {
    "linear": (lambda: nn.Linear(24, 12), (6, 24)),
    "linear-3d": (lambda: nn.Linear(24, 12), (2, 5, 24)),
    "conv1d": (lambda: nn.Conv1d(4, 8, 3, padding=1), (3, 4, 16)),
    "conv2d": (lambda: nn.Conv2d(4, 8, 3, padding=1), (3, 4, 9, 9)),
    "conv2d-depthwise": (lambda: nn.Conv2d(8, 8, 3, padding=1, groups=8), (3, 8, 9, 9)),
}
GRANULARITIES = {"per-channel": sk.PerChannel(0), "per-tensor": PerTensor()}


@pytest.mark.parametrize("gran", GRANULARITIES)
@pytest.mark.parametrize("kind", LAYERS)
def test_qdq_round_trip_within_one_output_step(kind, gran, tmp_path):
    torch.manual_seed(0)
    make, shape = LAYERS[kind]
    model = _One(make()).eval()
    out_q = ActQuant(QScheme(8, symmetric=False, signed=False))
    spec = LayerQuant(WeightQuant(QScheme(8, granularity=GRANULARITIES[gran])), uint8_act(),
                      out_q)
    calib = [torch.randn(*shape) for _ in range(4)]
    q = sk.quantize(model, sk.QuantConfig(spec), calib=calib, progress=False)
    p = sk.export(q, calib[0], tmp_path / "q.onnx")
    x = torch.randn(*shape)
    step = float(q.layer.output_quantizer.scale)
    diff = np.abs(_ort(p, x) - q(x).detach().numpy())
    assert diff.max() <= step * 1.0001  # rounding ties may land one step apart, never more
    assert (diff < 1e-6).mean() > 0.97  # and almost every output is identical


def test_residual_net_runs_on_integer_kernels(tiny_resnet, calib32, tmp_path):
    q = sk.quantize(tiny_resnet, sk.QuantConfig.w8a8(), calib=calib32, progress=False)
    kinds = [e.module_type for e in sk.record_of(q).plan.tensors]
    assert kinds.count("add input") == 4 and kinds.count("pool input") == 1
    p = sk.export(q, calib32[0], tmp_path / "q.onnx")
    ops = _optimized_ops(p, tmp_path)
    assert ops.count("QLinearConv") == 6 and "Conv" not in ops and "FusedConv" not in ops
    assert ops.count("QLinearAdd") == 2
    assert "QGemm" in ops
    par = check_parity(q, p, [torch.randn(8, 3, 32, 32) for _ in range(3)])
    assert par.top1_agreement >= 0.95 and par.cosine > 0.999


def test_exported_file_is_int8_sized_and_clean(tiny_resnet, calib32, tmp_path):
    q = sk.quantize(tiny_resnet, sk.QuantConfig.w8a8(), calib=calib32, progress=False)
    p = sk.export(q, calib32[0], tmp_path / "q.onnx")
    model = onnx.load(p)
    onnx.checker.check_model(model)
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}
    assert not [n for n in model.graph.node if n.domain not in ("", "ai.onnx")]
    weights = sum(m.weight.numel() for m in tiny_resnet.modules()
                  if isinstance(m, (nn.Conv2d, nn.Linear)))
    graph_overhead = 40_000  # node protos, names, scales, int32 biases
    assert os.path.getsize(p) <= 1.1 * weights + graph_overhead
    f = sk.export(tiny_resnet, calib32[0], tmp_path / "f.onnx")
    assert os.path.getsize(f) > 3 * weights  # the float file really holds fp32


def test_unconverted_model_is_an_error(tiny_resnet, tmp_path):
    qat = sk.prepare_qat(tiny_resnet, sk.QuantConfig.w8a8(), torch.randn(2, 3, 32, 32))
    with pytest.raises(ExportError, match="is not converted: call sk.convert"):
        sk.export(qat, torch.randn(2, 3, 32, 32), tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())


class MyLinear(nn.Linear):
    """A float type the exporter has no lowering for."""


def test_unknown_quantized_layer_type_names_module_and_type(tmp_path):
    from slimkit.quant.modules import QUANT_MODULES, QuantLinear

    QUANT_MODULES[MyLinear] = QuantLinear
    try:
        model = nn.Sequential(nn.Linear(4, 4), MyLinear(4, 2))
        q = sk.quantize(model, sk.QuantConfig.weight_only(8))
        with pytest.raises(ExportError, match=r"'1'.*MyLinear has no ONNX lowering"):
            sk.export(q, torch.randn(2, 4), tmp_path / "x.onnx")
    finally:
        del QUANT_MODULES[MyLinear]


def test_nonuniform_weights_are_refused_with_the_reason(tmp_path):
    q = sk.quantize(nn.Sequential(nn.Linear(8, 4)), sk.QuantConfig.nonuniform("kmeans", 4))
    with pytest.raises(ExportError, match="kmeans 4-bit weights; QDQ export takes linear"):
        sk.export(q, torch.randn(2, 8), tmp_path / "x.onnx")


def test_missing_directory_is_an_error(tiny_resnet, tmp_path):
    with pytest.raises(ExportError, match="directory .* does not exist"):
        sk.export(tiny_resnet, torch.randn(1, 3, 32, 32), tmp_path / "nope" / "m.onnx")


def test_failed_write_leaves_no_partial_file(tiny_resnet, tmp_path):
    target = tmp_path / "m.onnx"
    target.mkdir()  # os.replace onto a directory fails after the temp file was written
    with pytest.raises(OSError):
        sk.export(tiny_resnet, torch.randn(1, 3, 32, 32), target)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temp file left behind


def test_openvino_missing_names_the_extra(tiny_resnet, tmp_path, monkeypatch):
    import sys

    p = sk.export(tiny_resnet, torch.randn(1, 3, 32, 32), tmp_path / "f.onnx")
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
    with pytest.raises(RuntimeUnavailable, match=r"pip install 'slimkit\[openvino\]'"):
        session(p, "openvino")


def test_openvino_runs_the_same_qdq_file(tiny_resnet, calib32, tmp_path):
    pytest.importorskip("openvino")
    q = sk.quantize(tiny_resnet, sk.QuantConfig.w8a8(), calib=calib32, progress=False)
    p = sk.export(q, calib32[0], tmp_path / "q.onnx")
    x = torch.randn(4, 3, 32, 32)
    ov_out = session(p, "openvino").run((x,))
    assert sk.sqnr(torch.from_numpy(_ort(p, x)), torch.from_numpy(ov_out)) > 25
    assert sk.sqnr(q(x).detach(), torch.from_numpy(ov_out)) > 25



def test_int4_weight_only_linear_exports_to_matmul_nbits(tmp_path):
    torch.manual_seed(0)
    model = MLP(256, 512, 64).eval()
    q = sk.quantize(model, sk.QuantConfig.weight_only(4, group_size=32))
    p = sk.export(q, torch.randn(3, 256), tmp_path / "w4.onnx")
    assert [n.op_type for n in onnx.load(p).graph.node].count("MatMulNBits") == 2
    x = torch.randn(7, 256)
    assert sk.sqnr(q(x).detach(), torch.from_numpy(_ort(p, x))) > 60  # same weights exactly
    weights = 256 * 512 + 512 * 64
    scales = weights // 32 * 4
    assert os.path.getsize(p) <= 1.1 * weights / 2 + scales + 4 * (512 + 64) + 4_000


def test_4bit_grouped_conv_is_refused_with_the_reason(tmp_path):
    q = sk.quantize(nn.Sequential(nn.Conv2d(4, 8, 2)), sk.QuantConfig.weight_only(4, 16))
    with pytest.raises(ExportError, match="export only as 4-bit weight-only Linear"):
        sk.export(q, torch.randn(1, 4, 5, 5), tmp_path / "x.onnx")


def test_signed_activations_export_as_int8_qdq(tiny_resnet, calib32, tmp_path):
    q = sk.quantize(tiny_resnet, sk.QuantConfig.w8a8(signed_acts=True), calib=calib32,
                    progress=False)
    p = sk.export(q, calib32[0], tmp_path / "s8.onnx")
    zps = [i for i in onnx.load(p).graph.initializer if i.data_type == onnx.TensorProto.UINT8]
    assert not zps  # every activation zero point is int8
    par = check_parity(q, p, [torch.randn(8, 3, 32, 32)])
    assert par.cosine > 0.999


def test_export_keeps_the_exporters_own_logs_off_the_terminal(tiny_resnet, tmp_path, capfd,
                                                              monkeypatch):
    """onnxscript's constant folder logs 'Evaluation failed: …' at WARNING for a node it cannot
    fold (MiniLM's attention mask): the export succeeds, so the user must not see it."""
    import logging

    real = torch.onnx.export

    def chatty(*args, **kwargs):
        logging.getLogger("onnxscript.optimizer._constant_folding").warning(
            "Evaluation failed: cannot reshape array of size 1 into shape (1,128)")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", chatty)
    sk.export(tiny_resnet, torch.randn(1, 3, 32, 32), tmp_path / "m.onnx")
    out, err = capfd.readouterr()
    assert "Evaluation failed" not in out + err
