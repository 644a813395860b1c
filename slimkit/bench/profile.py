"""Where the time goes: per-node times from the runtime's own profiler, mapped back to layers.

    nodes = profile_nodes("model.onnx", "openvino", x)   # NodeTime per executed node
    for layer, ms in by_layer(nodes)[:10]: ...           # the layers that hold the time

ONNX Runtime: its profiler (one `<node>_kernel_time` event per node and run), on the graph
ORT optimised (QDQ groups fused into QLinearConv / QGemm …). OpenVINO: the compiled model's
performance counters (PERF_COUNT), per executed node with the kernel it chose
(`brgconv_avx512_amx_I8`, `jit_avx512_f32` …) — which shows at a glance what runs in int8.
Both report medians over `runs` calls. A node is named after the layer whose weight it
reads (`layer1.0.conv1`, from the weight initializer's name, or the layer it was fused into),
else after its op in brackets (`[MaxPool]`, `[Reorder]`): node names of those differ between
two exports of one model, their ops do not.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from slimkit.deploy.runtimes import openvino_config
from slimkit.errors import check_choice

PROFILED = ("ort", "openvino")
_SUFFIXES = ("_quantized", "_nbits", ".weight", "_weight")


@dataclass(frozen=True)
class NodeTime:
    node: str  # the runtime's node name
    op: str  # its op type (QLinearConv, Convolution, FakeQuantize …)
    layer: str  # the model layer whose weight it reads, else "[op]" (every such node of an op)
    kernel: str  # ORT: the execution provider; OpenVINO: the kernel it chose
    ms: float  # median over the profiled runs

    def to_dict(self) -> dict:
        return asdict(self)


def _layer_of_weight(name: str) -> str:
    for s in _SUFFIXES:
        if name.endswith(s):
            name = name[: -len(s)]
    for s in _SUFFIXES:  # "<layer>.weight_quantized" carries two
        if name.endswith(s):
            name = name[: -len(s)]
    return name


def weight_layers(model) -> dict[str, str]:
    """node name → layer, for every Conv / Gemm / MatMul (plain or QLinear / QGemm /
    MatMulNBits) whose weight is an initializer, possibly behind a DequantizeLinear."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    weight_pos = {"Conv": 1, "Gemm": 1, "MatMul": 1, "QLinearConv": 3, "QGemm": 3,
                  "QLinearMatMul": 3, "MatMulNBits": 1, "MatMulInteger": 1, "ConvInteger": 1}
    out = {}
    for n in g.node:
        pos = weight_pos.get(n.op_type)
        if pos is None or len(n.input) <= pos:
            continue
        w = n.input[pos]
        p = producer.get(w)
        while p is not None and p.op_type in ("DequantizeLinear", "Transpose", "Reshape"):
            w, p = p.input[0], producer.get(p.input[0])
        if w in inits:
            out[n.name] = _layer_of_weight(w)
    return out


# ops a runtime fuses into the layer before them: their outputs still belong to that layer
_FUSED_AFTER = {"BatchNormalization", "Relu", "Clip", "Add", "Sum", "LeakyRelu", "Sigmoid",
                "HardSigmoid", "HardSwish", "QuantizeLinear", "DequantizeLinear"}


def tensor_layers(model) -> dict[str, str]:
    """tensor name → layer: each weight layer's output, followed through the ops runtimes
    fuse into it (BN, activations, the residual add), while the chain has one consumer."""
    g = model.graph
    consumers: dict[str, list] = defaultdict(list)
    for n in g.node:
        for t in n.input:
            consumers[t].append(n)
    out: dict[str, str] = {}
    by_name = {n.name: n for n in g.node}
    for node_name, layer in weight_layers(model).items():
        t = by_name[node_name].output[0]
        out.setdefault(t, layer)
        while len(consumers[t]) == 1 and consumers[t][0].op_type in _FUSED_AFTER:
            t = consumers[t][0].output[0]
            out.setdefault(t, layer)
    return out


def _node_layer(node, weights: dict[str, str], tensors: dict[str, str]) -> str | None:
    """The layer of a node of an optimized graph: by its weight, else by the tensors it
    writes (ORT names a fused NCHWc node after its output: '<tensor>_nchwc')."""
    if node.name in weights:
        return weights[node.name]
    for t in (*node.output, node.name):
        for cand in (t, t.removesuffix("_nchwc")):
            if cand in tensors:
                return tensors[cand]
    return None


def profile_nodes(path: str | Path, runtime: str, inputs, threads: int = 2, runs: int = 20,
                  precision: str = "f32", config: dict | None = None) -> list[NodeTime]:
    """Per-node median times of one model file in one runtime, slowest first."""
    check_choice("profile runtime", runtime, PROFILED)
    xs = tuple(np.ascontiguousarray(a) for a in _arrays(inputs))
    if runtime == "ort":
        nodes = _ort(Path(path), xs, threads, runs)
    else:
        nodes = _openvino(Path(path), xs, threads, runs, precision, config or {})
    return sorted(nodes, key=lambda n: -n.ms)


def by_layer(nodes: list[NodeTime]) -> list[tuple[str, float]]:
    """(layer, ms) summed over the nodes of each layer, slowest first."""
    acc: dict[str, float] = defaultdict(float)
    for n in nodes:
        acc[n.layer] += n.ms
    return sorted(acc.items(), key=lambda kv: -kv[1])


def by_op(nodes: list[NodeTime]) -> list[tuple[str, str, int, float]]:
    """(op, kernel, count, ms) per op type and kernel, slowest first: what runs in int8."""
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    for n in nodes:
        acc[(n.op, n.kernel)].append(n.ms)
    return sorted(((op, k, len(v), sum(v)) for (op, k), v in acc.items()),
                  key=lambda r: -r[3])


def _arrays(inputs) -> tuple:
    import torch

    xs = inputs if isinstance(inputs, tuple | list) else (inputs,)
    return tuple(x.detach().numpy() if isinstance(x, torch.Tensor) else x for x in xs)


def _ort(path: Path, xs: tuple, threads: int, runs: int) -> list[NodeTime]:
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = str(Path(d) / "optimized.onnx")  # the fused graph
        so.log_severity_level = 3
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(d) / "prof")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feeds = dict(zip([i.name for i in sess.get_inputs()], xs, strict=True))
        for _ in range(runs + 2):
            sess.run(None, feeds)
        events = json.loads(Path(sess.end_profiling()).read_text())
        # a fused node is named after a source node or tensor; a reordered (NCHWc) weight
        # loses its name, so the source graph's tensors name the layer then
        src, opt = onnx.load(str(path)), onnx.load(str(Path(d) / "optimized.onnx"))
        known = weight_layers(src)
        names = set(known.values())  # ORT's own initializers ('reorder_token_3') name no layer
        weights = {**known, **{n: lay for n, lay in weight_layers(opt).items() if lay in names}}
        tensors = tensor_layers(src)
        layers = {n.name: lay for n in opt.graph.node
                  if (lay := _node_layer(n, weights, tensors)) is not None}
    times: dict[str, list[float]] = defaultdict(list)
    meta: dict[str, tuple[str, str]] = {}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        node = name[: -len("_kernel_time")]
        times[node].append(e["dur"] / 1e3)  # µs → ms
        args = e.get("args", {})
        meta[node] = (args.get("op_name", "?"), args.get("provider", ""))
    return [NodeTime(n, meta[n][0], layers.get(n, f"[{meta[n][0]}]"), meta[n][1],
                     statistics.median(t[2:] or t)) for n, t in times.items()]


def _openvino(path: Path, xs: tuple, threads: int, runs: int, precision: str,
              config: dict) -> list[NodeTime]:
    import openvino as ov


    core = ov.Core()
    cfg = {**openvino_config(threads, precision), **config, "PERF_COUNT": True}
    compiled = core.compile_model(core.read_model(str(path)), "CPU", cfg)
    req = compiled.create_infer_request()
    layers: dict[str, str] = {}
    if path.suffix == ".onnx":  # OpenVINO names a node after its ONNX node or output tensor
        import onnx

        src = onnx.load(str(path), load_external_data=False)
        layers = {**tensor_layers(src), **weight_layers(src)}
    times: dict[str, list[float]] = defaultdict(list)
    meta: dict[str, tuple[str, str]] = {}
    for i in range(runs + 2):
        req.infer(list(xs))
        if i < 2:
            continue  # warm-up: first runs pay one-time allocations
        for p in req.profiling_info:
            if p.status != p.Status.EXECUTED:
                continue
            times[p.node_name].append(p.real_time.total_seconds() * 1e3)
            meta[p.node_name] = (p.node_type, p.exec_type)
    return [NodeTime(n, meta[n][0], _ov_layer(n, layers, meta[n][0]), meta[n][1],
                     statistics.median(t)) for n, t in times.items()]


def _ov_layer(node: str, layers: dict[str, str], op: str) -> str:
    """OpenVINO keeps the ONNX node's name as a prefix ('node_conv2d_3/WithoutBiases', or the
    name with a fused op's suffix)."""
    if node in layers:
        return layers[node]
    return layers.get(node.split("/")[0], f"[{op}]")


__all__ = ["NodeTime", "PROFILED", "by_layer", "by_op", "profile_nodes", "weight_layers"]
