"""Runtimes behind one small interface: session(path_or_module) → .run(inputs).

Sessions are built once and reused; threads are set explicitly (intra-op), one stream.
PyTorch eager, ONNX Runtime (required), OpenVINO (optional extra `slimkit[openvino]`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from slimkit.errors import SlimkitError, check_choice

RUNTIMES = ("torch", "ort", "openvino")
OPENVINO_PRECISIONS = ("f32", "bf16")


class RuntimeUnavailable(SlimkitError):
    """A runtime is missing or cannot load the model."""


class Session(Protocol):
    name: str

    def run(self, inputs: tuple[np.ndarray, ...]) -> np.ndarray: ...


def _np(x) -> tuple[np.ndarray, ...]:
    xs = x if isinstance(x, tuple) else (x,)
    return tuple(t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t for t in xs)


@dataclass
class TorchSession:
    model: nn.Module
    threads: int = 2
    name: str = "torch"

    def __post_init__(self) -> None:
        self.model.eval()
        torch.set_num_threads(self.threads)  # process-wide, like ORT's per-session setting

    def run(self, inputs) -> np.ndarray:
        xs = tuple(torch.from_numpy(a) if isinstance(a, np.ndarray) else a
                   for a in (inputs if isinstance(inputs, tuple) else (inputs,)))
        with torch.inference_mode():
            out = self.model(*xs)
        return out.numpy() if isinstance(out, torch.Tensor) else out


class OrtSession:
    name = "ort"

    def __init__(self, path: str | Path, threads: int = 2, spin: bool = True) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        # Idle workers spin-wait by default: best for one session, but with several sessions
        # on two cores the spinners of one steal time from the next (benchmarks turn it off).
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, inputs) -> np.ndarray:
        feeds = dict(zip(self.input_names, _np(inputs), strict=True))
        return self.session.run(None, feeds)[0]


def installed(runtime: str) -> bool:
    """torch and ONNX Runtime always are; OpenVINO is an optional extra."""
    if runtime in ("torch", "ort"):
        return True
    try:
        import openvino  # noqa: F401 — optional and heavy: probed, not imported at load
    except ImportError:
        return False
    return True


def openvino_config(threads: int = 2, precision: str = "f32") -> dict:
    """The CPU plugin settings every slimkit OpenVINO session uses: one stream, the LATENCY
    hint (the anchors' best, ANCHORS.md), `threads` threads, float ops in `precision`."""
    check_choice("OpenVINO precision", precision, OPENVINO_PRECISIONS)
    return {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": precision}


class OpenVinoSession:
    """OpenVINO on the CPU, from an .onnx file or an OpenVINO IR (.xml). precision='f32' by
    default: on CPUs with AMX / AVX512-BF16, OpenVINO otherwise runs every float op in bf16
    on its own (INFERENCE_PRECISION_HINT), which changes results silently; 'bf16' asks for it
    explicitly. `config`: further CPU plugin properties (e.g. the sparse-weight
    decompression rate), merged over slimkit's."""

    name = "openvino"

    def __init__(self, path: str | Path, threads: int = 2, precision: str = "f32",
                 config: dict | None = None) -> None:
        cfg = {**openvino_config(threads, precision), **(config or {})}
        try:
            import openvino as ov
        except ImportError as e:
            msg = "OpenVINO is not installed: pip install 'slimkit[openvino]'"
            raise RuntimeUnavailable(msg) from e
        core = ov.Core()
        self.precision = precision
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", cfg)
        self.request = self.compiled.create_infer_request()

    def run(self, inputs) -> np.ndarray:
        res = self.request.infer(list(_np(inputs)))
        return next(iter(res.values()))


def session(model: nn.Module | str | Path, runtime: str | None = None, threads: int = 2,
            spin: bool = True, precision: str = "f32", config: dict | None = None) -> Session:
    """An nn.Module runs in PyTorch; an .onnx path in ONNX Runtime unless runtime='openvino'
    (an OpenVINO IR .xml always in OpenVINO); precision / config: OpenVINO's (see
    OpenVinoSession)."""
    if isinstance(model, nn.Module):
        return TorchSession(model, threads)
    path = Path(model)
    if not path.is_file():
        raise RuntimeUnavailable(f"model file {path} does not exist")
    runtime = runtime or ("openvino" if path.suffix == ".xml" else "ort")
    if runtime == "ort" and path.suffix != ".xml":
        return OrtSession(path, threads, spin)
    if runtime == "openvino":
        return OpenVinoSession(path, threads, precision, config)
    raise RuntimeUnavailable(f"runtime={runtime!r} is not allowed for {path.name}; "
                             f"choose one of {RUNTIMES[1:]} (an .xml file: openvino)")
