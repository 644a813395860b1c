"""Every ONNX file slimkit writes loads in every installed runtime.

The `onnx` package stamps new models with its own newest IR version (14 with onnx 1.23), which
an older ONNX Runtime refuses outright ("Unsupported model IR version: 14, max supported IR
version: 13"). Runtimes publish no "max IR version" API, so the highest version each accepts is
found once per process by loading a one-node model, newest version first. The opset is not
probed (a runtime that loads an opset may still lack its kernels): slimkit writes OPSET, which
every runtime version in pyproject.toml's declared range runs.
"""

from __future__ import annotations

import functools
import importlib.util
import io

import onnx
from onnx import TensorProto, helper

from slimkit.deploy.lowering import ExportError

# The default-domain opset of every file slimkit writes: onnxruntime ≥ 1.19 runs up to 21,
# OpenVINO ≥ 2024.4 up to 20 (its ONNX frontend); torch's exporter needs ≥ 18.
OPSET = 20


def _one_node(ir: int) -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = ir
    return model.SerializeToString()


def _ort_loads(proto: bytes) -> bool:
    import onnxruntime as ort

    try:
        ort.InferenceSession(proto, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 — any refusal means "not this version"
        return False
    return True


def _openvino_loads(proto: bytes) -> bool:
    import openvino as ov

    try:
        ov.Core().read_model(io.BytesIO(proto))
    except Exception:  # noqa: BLE001
        return False
    return True


def _runtimes() -> dict:
    found = {"onnxruntime": _ort_loads}
    if importlib.util.find_spec("openvino") is not None:
        found["openvino"] = _openvino_loads
    return found


@functools.cache
def max_ir_version() -> int:
    """The highest ONNX IR version that every installed runtime loads."""
    floor = helper.find_min_ir_version_for([helper.make_opsetid("", OPSET)])
    runtimes = _runtimes()
    for ir in range(onnx.IR_VERSION, floor - 1, -1):
        proto = _one_node(ir)
        if all(loads(proto) for loads in runtimes.values()):
            return ir
    raise ExportError(f"none of {', '.join(runtimes)} loads an ONNX file of IR version "
                      f"{floor}..{onnx.IR_VERSION} (opset {OPSET}); install the versions "
                      "pyproject.toml declares")


def fit(model: onnx.ModelProto) -> onnx.ModelProto:
    """Stamp `model` (in place) with the highest IR version the installed runtimes load, never
    below what its opsets need; returns it."""
    need = helper.find_min_ir_version_for(
        [o for o in model.opset_import if o.domain in ("", "ai.onnx")], ignore_unknown=True)
    cap = max_ir_version()
    if cap < need:
        raise ExportError(f"this model needs ONNX IR version ≥ {need} (opsets "
                          f"{[(o.domain or 'ai.onnx', o.version) for o in model.opset_import]}), "
                          f"the installed runtimes load ≤ {cap}")
    model.ir_version = min(model.ir_version, cap)
    return model


__all__ = ["OPSET", "fit", "max_ir_version"]
