"""Timing one-layer graphs in a runtime: sessions with bound buffers whose run() is what the
interleaved timer calls, and kernel_ms() the layer's own kernel time afterwards (the runtime's
profiler: ONNX Runtime's per-node events, OpenVINO's performance counters).

Only the layer's own node counts: layout conversions (NCHW ↔ blocked Reorder) and the input /
output quantization at the graph's edges are left out — inside a network consecutive layers
stay in the blocked layout and each Q/DQ pair is fused into the producing layer.
"""

from __future__ import annotations

import bisect
import json
import random
import statistics
import uuid
from pathlib import Path

import numpy as np

from slimkit.deploy.runtimes import openvino_config
from slimkit.latency.rounds import timed_round, warm

# ops at a one-layer graph's edges that a network does not pay per layer (OpenVINO's
# "Subgraph" is the input quantize / output dequantize of the graph, jitted on their own)
_EDGE_OPS = ("Reorder", "QuantizeLinear", "DequantizeLinear", "Transpose", "FakeQuantize",
             "Parameter", "Result", "Input", "Output", "Convert", "Identity", "Subgraph")


# the ops a table layer becomes inside a network (ORT fuses BN, activations and residual
# adds into Conv / Gemm; int8 QDQ groups become QLinear* / *Integer)
LAYER_OPS = frozenset({"Conv", "FusedConv", "NhwcConv", "Gemm", "FusedGemm", "MatMul",
                       "FusedMatMul", "QLinearConv", "QLinearMatMul", "ConvInteger",
                       "MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul"})


def _edge(op: str) -> bool:
    return op.startswith(_EDGE_OPS)


class OrtLayerSession:
    """An ORT session with input and output bound to preallocated buffers: run() times the
    kernels and the call, not numpy copies. With `profile_dir`, ORT records each node's kernel
    time too (kernel_ms reads them back)."""

    def __init__(self, proto: bytes, x: np.ndarray, y_shape: list[int], threads: int,
                 profile_dir: str | None = None) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if profile_dir is not None:
            so.enable_profiling = True
            # a name of its own: ORT stamps files to the millisecond, sessions would collide
            so.profile_file_prefix = str(Path(profile_dir) / f"layer-{uuid.uuid4().hex}")
        self.sess = ort.InferenceSession(proto, so, providers=["CPUExecutionProvider"])
        self.binding = self.sess.io_binding()
        self.binding.bind_cpu_input(self.sess.get_inputs()[0].name, x)
        self.y = ort.OrtValue.ortvalue_from_numpy(np.empty(y_shape, np.float32))
        self.binding.bind_ortvalue_output(self.sess.get_outputs()[0].name, self.y)

    def run(self) -> None:
        self.sess.run_with_iobinding(self.binding)

    def _runs(self) -> tuple[list[float], list[dict]]:
        """(start of each model_run, node events): the profile, read once."""
        if not hasattr(self, "_profile"):
            path = self.sess.end_profiling()
            try:
                events = json.loads(Path(path).read_text())
            finally:
                Path(path).unlink(missing_ok=True)
            starts = sorted(e["ts"] for e in events
                            if e.get("cat") == "Session" and e.get("name") == "model_run")
            nodes = [e for e in events
                     if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
            self._profile = (starts, nodes)
        return self._profile

    def kernel_ms(self, skip: int, quantile: float = 0.5) -> float:
        """Kernel time of the layer's own node(s) per run after the first `skip` runs: the
        median, or another quantile (a low one resists a shared machine's interruptions)."""
        starts, nodes = self._runs()
        # each node event lies inside one model_run event: sum the layer's nodes per run
        per_run = [0.0] * len(starts)
        for e in nodes:
            if not _edge(e.get("args", {}).get("op_name", "")):
                i = bisect.bisect_right(starts, e["ts"]) - 1
                if 0 <= i < len(starts):
                    per_run[i] += e["dur"]
        return _quantile(per_run[skip:] or per_run, quantile) / 1e3  # µs → ms

    def layer_node_ms(self, skip: int) -> list[float]:
        """A whole network's session: the median kernel time of each conv / gemm node (the
        layers a table holds), in execution order — which is the graph's, the exporter's
        call order."""
        starts, nodes = self._runs()
        per: dict[str, list[float]] = {}
        for e in nodes:
            if e.get("args", {}).get("op_name", "") in LAYER_OPS and \
                    bisect.bisect_right(starts, e["ts"]) - 1 >= skip:
                per.setdefault(e["name"], []).append(e["dur"] / 1e3)
        return [statistics.median(v) for v in per.values()]


class OvLayerSession:
    """An OpenVINO compiled layer (one stream, LATENCY hint, f32 float ops) with performance
    counters on: each run() records the layer's own nodes' time."""

    def __init__(self, proto: bytes, x: np.ndarray, y_shape: list[int], threads: int,
                 profile_dir: str | None = None) -> None:
        import io

        import openvino as ov


        core = ov.Core()
        cfg = {**openvino_config(threads, "f32"), "PERF_COUNT": profile_dir is not None}
        self.compiled = core.compile_model(core.read_model(io.BytesIO(proto)), "CPU", cfg)
        self.req = self.compiled.create_infer_request()
        self.x = ov.Tensor(x, shared_memory=True)
        self.profiled = profile_dir is not None
        self.samples: list[float] = []

    def run(self) -> None:
        self.req.infer([self.x])
        if self.profiled:  # outside the timed call's kernels; the counters are per run
            self.samples.append(sum(p.real_time.total_seconds() for p in self.req.profiling_info
                                    if p.status == p.Status.EXECUTED
                                    and not _edge(p.node_type)))

    def kernel_ms(self, skip: int, quantile: float = 0.5) -> float:
        return _quantile(self.samples[skip:] or self.samples, quantile) * 1e3


def _quantile(values: list[float], q: float) -> float:
    return statistics.median(values) if q == 0.5 else float(np.quantile(values, q))


SESSIONS = {"ort": OrtLayerSession, "openvino": OvLayerSession}


def interleaved_medians(runs: list, rounds: int, runs_per_round: int, warmup: int,
                        seed: int = 0) -> list[float]:
    """Median seconds of each zero-argument callable, timed by the rules every slimkit timer
    follows (latency/rounds.py: warm-up until settled, interleaved rounds in a seeded random
    order, each block after one untimed call)."""
    for r in runs:
        warm(r, warmup)
    times: list[list[float]] = [[] for _ in runs]
    rng = random.Random(seed)
    for _ in range(rounds):
        for i, ms in enumerate(timed_round(runs, runs_per_round, rng)):
            times[i] += ms
    return [statistics.median(t) / 1e3 for t in times]


__all__ = ["SESSIONS", "OrtLayerSession", "OvLayerSession", "interleaved_medians"]
