"""Per-layer latency table: measure single layers on the runtime, cache them per machine, and
predict a whole network's latency as the sum of its layers plus a per-network overhead.

Used by architecture search (latency constraints before training) and meant for mixed
precision (cost per layer and precision) and channel-rounding sweeps, so it lives in bench/.

    table = LatencyTable(batch=64)                     # ORT, fp32, 2 threads, this machine
    ms = table.predict(model, torch.randn(1, 1, 8, 8))  # measures missing layers, then sums

How a layer is timed (the rules of bench/measure.py): the one-layer ONNX graph (the same
Conv / Gemm node the exporter writes, built directly with onnx.helper: the dynamo exporter
costs ~0.6 s per layer, which would dominate a sweep) runs in ONNX Runtime with I/O bound to
preallocated buffers (no input / output copies: inside a network a layer pays none), warm-up,
then `rounds` interleaved rounds of `runs_per_round` timed calls per layer (≥ 20 in all),
candidates in a seeded-random order each round, medians. Sessions never spin-wait: several
share two cores.

The cache is a JSON file named and stamped with `Target.key()`, the runtime and its version:
a file from another machine (or runtime version) is ignored, never mixed in. It is rewritten
atomically after every chunk of layers, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import random
import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slimkit.errors import ConfigError, check_choice
from slimkit.io.atomic import write_atomic

log = logging.getLogger("slimkit.bench")
KINDS = ("conv", "depthwise", "linear")
RUNTIMES = ("ort",)
PRECISIONS = ("fp32",)  # "int8" (QDQ around the node) is the next one; the key carries it
CACHE_VERSION = 4  # 2: kernel times from ORT profiling; 4: (per_layer, base) calibration


@dataclass(frozen=True)
class LayerSpec:
    """One conv / depthwise conv / linear layer and its input size (per sample)."""

    kind: str
    c_in: int
    c_out: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    h: int = 1  # input height / width (1 for linear)
    w: int = 1
    bias: bool = False

    def __post_init__(self) -> None:
        check_choice("LayerSpec.kind", self.kind, KINDS)

    def key(self) -> str:
        k, s, p = self.kernel, self.stride, self.padding
        return (f"{self.kind}:{self.c_in}x{self.c_out}:k{k[0]}x{k[1]}:s{s[0]}x{s[1]}:"
                f"p{p[0]}x{p[1]}:g{self.groups}:{self.h}x{self.w}:b{int(self.bias)}")

    def out_hw(self) -> tuple[int, int]:
        return ((self.h + 2 * self.padding[0] - self.kernel[0]) // self.stride[0] + 1,
                (self.w + 2 * self.padding[1] - self.kernel[1]) // self.stride[1] + 1)

    def macs(self) -> int:
        """Multiply-accumulates for one sample."""
        if self.kind == "linear":
            return self.c_in * self.c_out
        oh, ow = self.out_hw()
        return oh * ow * self.c_out * (self.c_in // self.groups) * self.kernel[0] * self.kernel[1]


def _pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, tuple | list) else (int(v), int(v))


def _conv_spec(m: nn.Conv2d, x: torch.Tensor) -> LayerSpec:
    if m.dilation != (1, 1) or m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise ConfigError(f"layer latency: Conv2d with dilation={m.dilation}, padding="
                          f"{m.padding!r}, padding_mode={m.padding_mode!r} is not supported; "
                          "the table covers zero-padded, undilated convs")
    dw = m.groups > 1 and m.groups == m.in_channels
    return LayerSpec("depthwise" if dw else "conv", m.in_channels, m.out_channels,
                     _pair(m.kernel_size), _pair(m.stride), _pair(m.padding), m.groups,
                     int(x.shape[2]), int(x.shape[3]), m.bias is not None)


def layer_specs(model: nn.Module, example_inputs) -> list[tuple[str, LayerSpec]]:
    """(module name, spec) of every Conv2d / Linear in `model`, in call order, from one forward
    pass (batch 1 is enough: the specs are per sample)."""
    found: list[tuple[str, LayerSpec]] = []
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, n=name: found.append((n, _conv_spec(mod, inp[0])))))
        elif isinstance(m, nn.Linear):
            def lin(mod, inp, out, n=name):
                if inp[0].dim() != 2:  # (N, F) only: a (N, T, F) linear is a batched matmul
                    raise ConfigError(f"layer latency: Linear '{n}' sees a {inp[0].dim()}-D "
                                      "input; the table covers (N, features) inputs")
                found.append((n, LayerSpec("linear", mod.in_features, mod.out_features,
                                           bias=mod.bias is not None)))
            hooks.append(m.register_forward_hook(lin))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            xs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
            model(*xs)
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return found


def layer_onnx(spec: LayerSpec, batch: int) -> bytes:
    """A one-node ONNX model of `spec` (random weights; timing does not depend on them)."""
    from onnx import TensorProto, helper, numpy_helper

    from slimkit.deploy.onnx_export import DEFAULT_OPSET

    rng = np.random.default_rng(0)
    if spec.kind == "linear":
        x_shape, y_shape = [batch, spec.c_in], [batch, spec.c_out]
        w = rng.standard_normal((spec.c_out, spec.c_in)).astype(np.float32)
        inputs = ["x", "W"] + (["B"] if spec.bias else [])
        node = helper.make_node("Gemm", inputs, ["y"], transB=1)
    else:
        oh, ow = spec.out_hw()
        x_shape, y_shape = [batch, spec.c_in, spec.h, spec.w], [batch, spec.c_out, oh, ow]
        w = rng.standard_normal((spec.c_out, spec.c_in // spec.groups, *spec.kernel))
        w = w.astype(np.float32)
        inputs = ["x", "W"] + (["B"] if spec.bias else [])
        p = spec.padding
        node = helper.make_node("Conv", inputs, ["y"], kernel_shape=list(spec.kernel),
                                strides=list(spec.stride), pads=[p[0], p[1], p[0], p[1]],
                                group=spec.groups)
    inits = [numpy_helper.from_array(w, "W")]
    if spec.bias:
        inits.append(numpy_helper.from_array(np.zeros(spec.c_out, np.float32), "B"))
    graph = helper.make_graph(
        [node], "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", DEFAULT_OPSET)])
    return model.SerializeToString()


class _BoundSession:
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

    def kernel_ms(self, skip: int) -> float:
        """Median kernel time of the layer's own node per run, after the first `skip` runs.
        Layout conversions around it (NCHW ↔ NCHWc ReorderInput / ReorderOutput) are left
        out: inside a network consecutive convs stay in the blocked layout and pay none."""
        path = self.sess.end_profiling()
        try:
            events = json.loads(Path(path).read_text())
        finally:
            Path(path).unlink(missing_ok=True)
        durs = [e["dur"] for e in events
                if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")
                and not e.get("args", {}).get("op_name", "").startswith("Reorder")]
        return statistics.median(durs[skip:]) / 1e3  # µs → ms


def interleaved_medians(runs: list, rounds: int, runs_per_round: int, warmup: int,
                        seed: int = 0) -> list[float]:
    """Median seconds of each zero-argument callable, timed by the rules of bench/measure.py:
    warm-up; rounds in a fresh seeded-random order; each block starts with one untimed call."""
    for r in runs:
        for _ in range(warmup):
            r()
    times: list[list[float]] = [[] for _ in runs]
    rng = random.Random(seed)
    for _ in range(rounds):
        for i in rng.sample(range(len(runs)), len(runs)):
            runs[i]()
            for _ in range(runs_per_round):
                t = time.perf_counter()
                runs[i]()
                times[i].append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


def default_cache_dir() -> Path:
    return Path(os.environ.get("SLIMKIT_CACHE", Path.home() / ".cache" / "slimkit"))


def _runtime_version(runtime: str) -> str:
    import onnxruntime

    return onnxruntime.__version__


@dataclass
class Prediction:
    total_ms: float
    layers_ms: float  # Σ of the table's kernel times
    overhead_ms: float  # total − layers_ms: what the calibration adds
    per_layer: list[tuple[str, float]]  # (module name, ms)

    def to_dict(self) -> dict:
        return asdict(self)


class LatencyTable:
    """Per-layer latencies on this machine, cached in `cache_dir` (default ~/.cache/slimkit,
    or $SLIMKIT_CACHE).

    A network costs more (or less) than the sum of its layers' kernels: the call itself, the
    ops outside the table (pooling, adds, reshapes) and the dispatch of every node. calibrate()
    fits those two terms,

        total = Σ kernels + per_layer · (number of layers) + base,

    on a few networks measured end to end (base alone with fewer than 3); until then
    total = Σ kernels. check() reports the error on other networks. (A free scale on Σ kernels
    was tried too: on this shared 2-core machine it over-fitted 5 noisy networks.)"""

    ROUNDS, RUNS_PER_ROUND, WARMUP, CHUNK = 5, 4, 3, 16  # 20 timed runs per layer

    def __init__(self, batch: int = 1, threads: int = 2, runtime: str = "ort",
                 precision: str = "fp32", cache_dir: str | os.PathLike | None = None) -> None:
        check_choice("LatencyTable.runtime", runtime, RUNTIMES)
        check_choice("LatencyTable.precision", precision, PRECISIONS)
        if not isinstance(batch, int) or batch < 1:
            raise ConfigError(f"LatencyTable.batch={batch!r} must be an int ≥ 1")
        from slimkit.target import resolve_target

        self.batch, self.threads, self.runtime, self.precision = batch, threads, runtime, precision
        self.target = resolve_target("auto")
        self.version = _runtime_version(runtime)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.path = self.cache_dir / (f"layer-latency-{self.target.key()}-{runtime}-"
                                      f"{self.version}.json")
        self.entries: dict[str, float] = {}  # measurement key → kernel ms
        self.overheads: dict[str, dict] = {}  # batch|threads|precision → calibration
        self._load()

    # ---- the cache ---------------------------------------------------------------------------
    def _stamp(self) -> dict:
        return {"version": CACHE_VERSION, "target": self.target.key(),
                "machine": self.target.describe(), "runtime": self.runtime,
                "runtime_version": self.version}

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:  # unreadable or not JSON: start afresh, say so
            log.warning("layer latency cache %s unreadable (%s); ignoring it", self.path, e)
            return
        stamp = {k: data.get(k) for k in self._stamp() if k != "machine"}
        want = {k: v for k, v in self._stamp().items() if k != "machine"}
        if stamp != want:
            log.warning("layer latency cache %s was measured on %s (%s); ignoring it",
                        self.path, data.get("machine"), stamp)
            return
        self.entries = {k: float(v) for k, v in data.get("entries", {}).items()}
        self.overheads = dict(data.get("overheads", {}))

    def save(self) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        data = {**self._stamp(), "entries": dict(sorted(self.entries.items())),
                "overheads": self.overheads}
        write_atomic(self.path, json.dumps(data, indent=1))

    def _key(self, spec: LayerSpec) -> str:
        return f"{spec.key()}|b{self.batch}|t{self.threads}|{self.precision}"

    def _calib_key(self) -> str:
        return f"b{self.batch}|t{self.threads}|{self.precision}"

    @property
    def calibration(self) -> dict:
        """{'scale', 'per_layer', 'base'} for this batch / threads / precision."""
        c = self.overheads.get(self._calib_key())
        return dict(c) if isinstance(c, dict) else {"scale": 1.0, "per_layer": 0.0, "base": 0.0}

    def total(self, layers_ms: float, n_layers: int) -> float:
        c = self.calibration
        # a fitted negative base can undercut a tiny network: never predict below half its
        # kernels (a run cannot be cheaper than the work it does)
        return max(c["scale"] * layers_ms + c["per_layer"] * n_layers + c["base"],
                   0.5 * layers_ms)

    # ---- measuring ---------------------------------------------------------------------------
    def missing(self, specs) -> list[LayerSpec]:
        return list(dict.fromkeys(s for s in specs if self._key(s) not in self.entries))

    def measure(self, specs) -> int:
        """Time every spec not in the table yet, CHUNK at a time, saving after each chunk.
        Returns how many were measured."""
        import tempfile

        todo = self.missing(specs)
        for i in range(0, len(todo), self.CHUNK):
            chunk = todo[i:i + self.CHUNK]
            with tempfile.TemporaryDirectory() as prof:
                sessions = [self._session(s, prof) for s in chunk]
                interleaved_medians([s.run for s in sessions], self.ROUNDS, self.RUNS_PER_ROUND,
                                    self.WARMUP, seed=i)
                for spec, sess in zip(chunk, sessions, strict=True):
                    self.entries[self._key(spec)] = sess.kernel_ms(skip=self.WARMUP)
            self.save()
        return len(todo)

    def _session(self, spec: LayerSpec, profile_dir: str) -> _BoundSession:
        b = self.batch
        shape = [b, spec.c_in] if spec.kind == "linear" else [b, spec.c_in, spec.h, spec.w]
        y = [b, spec.c_out] if spec.kind == "linear" else [b, spec.c_out, *spec.out_hw()]
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        return _BoundSession(layer_onnx(spec, b), x, y, self.threads, profile_dir)

    def lookup(self, specs) -> list[float]:
        self.measure(specs)
        return [self.entries[self._key(s)] for s in specs]

    # ---- networks ----------------------------------------------------------------------------
    def predict(self, model: nn.Module, example_inputs) -> Prediction:
        """Σ layers, calibrated; measures the layers the table does not have yet."""
        named = layer_specs(model, example_inputs)
        ms = self.lookup([s for _, s in named])
        layers = float(sum(ms))
        total = self.total(layers, len(named))
        return Prediction(total, layers, total - layers,
                          [(n, m) for (n, _), m in zip(named, ms, strict=True)])

    def _network_session(self, m: nn.Module, x: torch.Tensor) -> _BoundSession:
        from slimkit.deploy.onnx_export import to_onnx

        xb = x.expand(self.batch, *x.shape[1:]).contiguous()
        with torch.no_grad():
            y = m.eval()(xb)
        proto = to_onnx(m, xb, dynamic_batch=False).SerializeToString()
        return _BoundSession(proto, xb.numpy(), list(y.shape), self.threads)

    def measure_jointly(self, models: dict[str, tuple[nn.Module, torch.Tensor]]) -> dict:
        """End-to-end ORT median ms of each (model, example at batch 1) at this table's batch,
        and a fresh kernel time for each of their layers, all interleaved in one run: on a
        machine that drifts (or is shared) the two sides of a comparison see the same load.
        Returns {name: (network ms, Σ fresh layer ms, number of layers)}; the cache is left
        as it is."""
        import tempfile

        nets = {n: self._network_session(m, x) for n, (m, x) in models.items()}
        specs = {n: [s for _, s in layer_specs(m, x)] for n, (m, x) in models.items()}
        uniq = list(dict.fromkeys(s for ss in specs.values() for s in ss))
        with tempfile.TemporaryDirectory() as prof:
            layers = [self._session(s, prof) for s in uniq]
            meds = interleaved_medians([s.run for s in [*nets.values(), *layers]],
                                       self.ROUNDS * 2, self.RUNS_PER_ROUND, self.WARMUP)
            fresh = {s: sess.kernel_ms(skip=self.WARMUP) for s, sess in zip(uniq, layers,
                                                                               strict=True)}
        return {n: (meds[i] * 1e3, sum(fresh[s] for s in specs[n]), len(specs[n]))
                for i, n in enumerate(nets)}

    def calibrate(self, models: dict[str, tuple[nn.Module, torch.Tensor]]) -> dict:
        """Fit per_layer and base (see the class doc) by least squares on `models`,
        each network and its layers measured in one interleaved run; saved with the table."""
        joint = self.measure_jointly(models)
        gap = np.array([net - lay for net, lay, _ in joint.values()])  # ms beyond the kernels
        counts = np.array([float(n) for _, _, n in joint.values()])
        if len(gap) >= 3 and np.ptp(counts) > 0:
            per_layer, base = np.linalg.lstsq(np.stack([counts, np.ones(len(gap))], 1), gap,
                                              rcond=None)[0]
        else:
            per_layer, base = 0.0, float(np.median(gap))
        c = {"scale": 1.0, "per_layer": per_layer, "base": base}
        self.overheads[self._calib_key()] = {k: float(v) for k, v in c.items()}
        self.save()
        return self.calibration

    def check(self, models: dict[str, tuple[nn.Module, torch.Tensor]]) -> list[dict]:
        """Predicted vs measured end-to-end for each model. `error` compares the network with
        its layers timed in the same run (+ calibration); `error_cached` uses the table's
        stored entries, measured earlier (it also carries the machine's drift since then)."""
        joint = self.measure_jointly(models)
        rows = []
        for n, (m, x) in models.items():
            net, lay, count = joint[n]
            cached, pred = self.predict(m, x).total_ms, self.total(lay, count)
            rows.append({"model": n, "measured_ms": net, "predicted_ms": pred,
                         "cached_ms": cached, "error": (pred - net) / net,
                         "error_cached": (cached - net) / net})
        return rows


__all__ = ["LatencyTable", "LayerSpec", "Prediction", "interleaved_medians", "layer_onnx",
           "layer_specs"]
