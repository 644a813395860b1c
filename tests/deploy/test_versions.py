"""Every ONNX file slimkit writes carries an IR version and opset the installed runtimes load.
`make test-oldest` runs this file with the oldest declared onnxruntime and OpenVINO too."""

import io

import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper

from slimkit.deploy.lowering import ExportError
from slimkit.deploy.onnx_export import to_onnx
from slimkit.deploy.versions import OPSET, fit, max_ir_version
from slimkit.latency.graphs import layer_onnx
from slimkit.latency.spec import LayerSpec


def _loads_everywhere(proto: bytes) -> None:
    ort.InferenceSession(proto, providers=["CPUExecutionProvider"])
    ov = pytest.importorskip("openvino")
    ov.Core().compile_model(ov.Core().read_model(io.BytesIO(proto)), "CPU")


def _opset(proto: onnx.ModelProto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def test_the_cap_is_a_version_every_runtime_loads():
    cap = max_ir_version()
    assert helper.find_min_ir_version_for([helper.make_opsetid("", OPSET)]) <= cap
    assert cap <= onnx.IR_VERSION


def test_exported_files_load_in_every_installed_runtime():
    proto = to_onnx(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()), torch.randn(2, 4))
    assert proto.ir_version <= max_ir_version() and _opset(proto) == OPSET
    _loads_everywhere(proto.SerializeToString())


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_per_layer_latency_files_load_in_every_installed_runtime(precision):
    # helper.make_model stamps onnx's own newest IR version (14 with onnx 1.23), which
    # onnxruntime 1.31 refused: these files must carry the cap instead
    spec = LayerSpec(kind="linear", c_in=8, c_out=4, bias=True)
    proto = onnx.load_from_string(layer_onnx(spec, 2, precision))
    assert proto.ir_version <= max_ir_version() and _opset(proto) == OPSET
    _loads_everywhere(proto.SerializeToString())


def test_fit_lowers_a_newer_stamp_and_keeps_an_older_one():
    model = helper.make_model(helper.make_graph([], "g", [], []),
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = onnx.IR_VERSION
    assert fit(model).ir_version == max_ir_version()
    model.ir_version = 9
    assert fit(model).ir_version == 9


def test_a_model_needing_a_newer_ir_than_the_runtimes_load_is_refused_by_version(monkeypatch):
    # (the installed runtimes load every opset onnx can stamp here, so the cap is lowered to
    # what an older runtime would give)
    import slimkit.deploy.versions as versions

    model = helper.make_model(helper.make_graph([], "g", [], []),
                              opset_imports=[helper.make_opsetid("", OPSET)])
    need = helper.find_min_ir_version_for(list(model.opset_import))
    monkeypatch.setattr(versions, "max_ir_version", lambda: need - 1)
    with pytest.raises(ExportError, match=f"needs ONNX IR version ≥ {need}.*load ≤ {need - 1}"):
        fit(model)
