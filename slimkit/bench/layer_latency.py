"""Per-layer latency table: measure single layers on the runtime, cache them per machine, and
predict a whole network's latency as the sum of its layers plus a per-network overhead.

Used by architecture search (latency constraints before training) and meant for mixed
precision (cost per layer and precision) and channel-rounding sweeps, so it lives in bench/.

    table = LatencyTable(batch=64)                     # ORT, fp32, 2 threads, this machine
    ms = table.predict(model, torch.randn(1, 1, 8, 8))  # measures missing layers, then sums
    LatencyTable(runtime="openvino", precision="int8")  # OpenVINO, slimkit's int8 QDQ form

How a layer is timed (the rules of bench/measure.py): the one-layer ONNX graph (the same
Conv / Gemm node the exporter writes — in fp32, or int8 in slimkit's QDQ form:
bench/layer_graphs.py) runs in ONNX Runtime or OpenVINO (bench/layer_sessions.py) with I/O
bound to preallocated buffers (no input / output copies: inside a network a layer pays none),
its own kernel time read from the runtime's profiler; warm-up,
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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slimkit.bench.layer_graphs import PRECISIONS, layer_onnx, shapes
from slimkit.bench.layer_sessions import SESSIONS, interleaved_medians
from slimkit.bench.layer_spec import KINDS, LayerSpec, layer_specs
from slimkit.errors import ConfigError, check_choice
from slimkit.io.atomic import write_atomic

log = logging.getLogger("slimkit.bench")
RUNTIMES = tuple(SESSIONS)  # ort, openvino
CACHE_VERSION = 4  # 2: kernel times from ORT profiling; 4: (per_layer, base) calibration


def default_cache_dir() -> Path:
    return Path(os.environ.get("SLIMKIT_CACHE", Path.home() / ".cache" / "slimkit"))


def _runtime_version(runtime: str) -> str:
    """The installed version of `runtime`; RuntimeUnavailable (named) when it is missing."""
    from slimkit.deploy.runtimes import RuntimeUnavailable

    try:
        if runtime == "openvino":
            import openvino

            return openvino.__version__.split("-")[0]
        import onnxruntime

        return onnxruntime.__version__
    except ImportError as e:
        raise RuntimeUnavailable(f"LatencyTable.runtime={runtime!r}: {runtime} is not installed "
                                 "(pip install 'slimkit[openvino]')") from e


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
                 precision: str = "fp32", cache_dir: str | os.PathLike | None = None,
                 quantile: float = 0.5) -> None:
        check_choice("LatencyTable.runtime", runtime, RUNTIMES)
        check_choice("LatencyTable.precision", precision, PRECISIONS)
        if not isinstance(batch, int) or batch < 1:
            raise ConfigError(f"LatencyTable.batch={batch!r} must be an int ≥ 1")
        if not 0.0 <= quantile <= 1.0:
            raise ConfigError(f"LatencyTable.quantile={quantile!r} must be in [0, 1]")
        self.quantile = quantile  # of each layer's kernel times (0.5: the median)
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
        q = "" if self.quantile == 0.5 else f"|q{round(100 * self.quantile)}"
        return f"{spec.key()}|b{self.batch}|t{self.threads}|{self.precision}{q}"

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
                    self.entries[self._key(spec)] = sess.kernel_ms(self.WARMUP, self.quantile)
            self.save()
        return len(todo)

    def _session(self, spec: LayerSpec, profile_dir: str):
        shape, y = shapes(spec, self.batch)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        return SESSIONS[self.runtime](layer_onnx(spec, self.batch, self.precision), x, y,
                                      self.threads, profile_dir)

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

    def _network_session(self, m: nn.Module, x: torch.Tensor):
        from slimkit.deploy.onnx_export import to_onnx

        xb = x.expand(self.batch, *x.shape[1:]).contiguous()
        with torch.no_grad():
            y = m.eval()(xb)
        proto = to_onnx(m, xb, dynamic_batch=False).SerializeToString()
        return SESSIONS[self.runtime](proto, xb.numpy(), list(y.shape), self.threads)

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


__all__ = ["KINDS", "PRECISIONS", "RUNTIMES", "LatencyTable", "LayerSpec", "Prediction",
           "interleaved_medians", "layer_onnx", "layer_specs"]
