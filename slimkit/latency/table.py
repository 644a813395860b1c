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

from slimkit.atomic import write_atomic
from slimkit.deploy.onnx_export import to_onnx
from slimkit.deploy.runtimes import RuntimeUnavailable
from slimkit.errors import ConfigError, check_choice
from slimkit.latency.graphs import PRECISIONS, layer_onnx, shapes
from slimkit.latency.sessions import SESSIONS, interleaved_medians
from slimkit.latency.spec import KINDS, LayerSpec, layer_specs
from slimkit.target import resolve_target

log = logging.getLogger("slimkit.bench")
RUNTIMES = tuple(SESSIONS)  # ort, openvino
CACHE_VERSION = 8  # 2: kernel times from ORT profiling; 5: in-network layer calibration; 6: base
# fitted on unprofiled network runs; 7: calibrations per scope, with networks and LOO error;
# 8: per_layer and base fitted for relative error


def default_cache_dir() -> Path:
    return Path(os.environ.get("SLIMKIT_CACHE", Path.home() / ".cache" / "slimkit"))


def _runtime_version(runtime: str) -> str:
    """The installed version of `runtime`; RuntimeUnavailable (named) when it is missing."""
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

    A layer inside a network is not the layer alone: its weights are not in cache when its
    turn comes (timed alone, the same weights are read again and again), and the network adds
    the call itself and the ops outside the table (pooling, reshapes, the dispatch of every
    node). calibrate() fits both, on networks measured end to end, each with a profiled twin
    (ONNX Runtime's profiler names each node's kernel time):

        layer in network = scale · (layer alone) + per_mb · (its weights, MB) + c
                           fitted on every layer of the profiled twins (hundreds of points);
        total = Σ scale · alone + per_mb · MB  +  per_layer · layers + base
                           per_layer and base fitted on the unprofiled runs (≥ 8 networks;
                           fewer: per_layer = c, base = the median residual).

    The end-to-end time must come from an unprofiled run: the profiler's per-node events
    made ResNet-18 at batch 1 11 % slower, and 82 % once pruned to half its channels.
    Measured on ResNet-like nets (AMD EPYC, batch 1) the in-network kernels were ≈ 1.0× the
    lone ones plus 16–29 µs per MB of weights — what reading them from memory costs. Until
    calibrated, total = Σ kernels; check() reports the error on other networks. OpenVINO's
    counters do not name layers in call order: there only per_layer and base are fitted.

    The fit belongs to a family of networks (`scope`: the search calibrates one per space),
    the layer entries to the machine: tables of several scopes share one file."""

    ROUNDS, RUNS_PER_ROUND, WARMUP, CHUNK = 5, 4, 3, 16  # 20 timed runs per layer
    # calibrate() / check() pool this many joint runs by median: a slow spell of the machine
    # slowed whole runs 45 % and lone kernels 15 % for one ~10 s run here, and a fit on it
    # predicted every other run 25 % high (MobileNetV2-like nets, batch 1)
    REPEATS = 3

    def __init__(self, batch: int = 1, threads: int = 2, runtime: str = "ort",
                 precision: str = "fp32", cache_dir: str | os.PathLike | None = None,
                 quantile: float = 0.5, scope: str = "") -> None:
        check_choice("LatencyTable.runtime", runtime, RUNTIMES)
        check_choice("LatencyTable.precision", precision, PRECISIONS)
        if not isinstance(batch, int) or batch < 1:
            raise ConfigError(f"LatencyTable.batch={batch!r} must be an int ≥ 1")
        if not 0.0 <= quantile <= 1.0:
            raise ConfigError(f"LatencyTable.quantile={quantile!r} must be in [0, 1]")
        self.quantile = quantile  # of each layer's kernel times (0.5: the median)
        # what the calibration is for (a search space, say): whole-network overheads differ
        # between families of networks, the layer entries do not — they are shared
        self.scope = scope

        self.batch, self.threads, self.runtime, self.precision = batch, threads, runtime, precision
        self.target = resolve_target("auto")
        self.version = _runtime_version(runtime)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.path = self.cache_dir / (f"layer-latency-{self.target.key()}-{runtime}-"
                                      f"{self.version}.json")
        # measurement key → kernel ms; batch|threads|precision(|scope) → calibration
        self.entries, self.overheads = self._read()

    # ---- the cache ---------------------------------------------------------------------------
    def _stamp(self) -> dict:
        return {"version": CACHE_VERSION, "target": self.target.key(),
                "machine": self.target.describe(), "runtime": self.runtime,
                "runtime_version": self.version}

    def _read(self) -> tuple[dict[str, float], dict[str, dict]]:
        """(entries, overheads) of the cache file; empty when it is missing, unreadable or
        was measured elsewhere (another machine or runtime version: never mixed in)."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}, {}
        except (OSError, ValueError) as e:  # unreadable or not JSON: start afresh, say so
            log.warning("layer latency cache %s unreadable (%s); ignoring it", self.path, e)
            return {}, {}
        stamp = {k: data.get(k) for k in self._stamp() if k != "machine"}
        want = {k: v for k, v in self._stamp().items() if k != "machine"}
        if stamp != want:
            log.warning("layer latency cache %s was measured on %s (%s); ignoring it",
                        self.path, data.get("machine"), stamp)
            return {}, {}
        return ({k: float(v) for k, v in data.get("entries", {}).items()},
                dict(data.get("overheads", {})))

    def save(self) -> None:
        """Write the table, merged with what the file holds now: search workers on one
        machine share the file, and each keeps what the others measured meanwhile (its own
        entries win where both have one)."""
        entries, overheads = self._read()
        self.entries = {**entries, **self.entries}
        self.overheads = {**overheads, **self.overheads}
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        data = {**self._stamp(), "entries": dict(sorted(self.entries.items())),
                "overheads": self.overheads}
        write_atomic(self.path, json.dumps(data, indent=1))

    def _key(self, spec: LayerSpec) -> str:
        q = "" if self.quantile == 0.5 else f"|q{round(100 * self.quantile)}"
        return f"{spec.key()}|b{self.batch}|t{self.threads}|{self.precision}{q}"

    def _calib_key(self) -> str:
        key = f"b{self.batch}|t{self.threads}|{self.precision}"
        return f"{key}|{self.scope}" if self.scope else key

    @property
    def calibrated(self) -> bool:
        return self.calibration_info is not None

    @property
    def calibration(self) -> dict:
        """{'scale', 'per_mb', 'per_layer', 'base'} for this batch / threads / precision
        (and scope); until calibrated, (1, 0, 0, 0): total = Σ kernels."""
        c = self.calibration_info or {}
        return {k: float(c.get(k, v)) for k, v in FIT_IDENTITY.items()}

    @property
    def calibration_info(self) -> dict | None:
        """The stored calibration with how it was made: the terms, `networks` (how many were
        measured) and `loo_error` (mean |relative error| of each network predicted by a fit
        on the others; None below 3 networks); None until calibrated."""
        c = self.overheads.get(self._calib_key())
        return dict(c) if isinstance(c, dict) else None

    def weight_mb(self, specs) -> float:
        per = 1 if self.precision == "int8" else 4  # bytes per weight as the runtime holds it
        return sum(s.weight_count() for s in specs) * per / 1e6

    def total(self, layers_ms: float, n_layers: int, weight_mb: float = 0.0) -> float:
        return _apply(self.calibration, layers_ms, n_layers, weight_mb)

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
        total = self.total(layers, len(named), self.weight_mb([sp for _, sp in named]))
        return Prediction(total, layers, total - layers,
                          [(n, m) for (n, _), m in zip(named, ms, strict=True)])

    def _network_sessions(self, m: nn.Module, x: torch.Tensor, profile_dir: str):
        """(plain, profiled) sessions of the network; profiled is None off ORT. The end-to-end
        time comes from the plain one: ORT's profiler records an event per node, which
        measured here +11 % on ResNet-18 at batch 1 and +82 % once it was pruned to half its
        channels — the error of a prediction checked against a profiled run is not the one a
        user sees."""
        xb = x.expand(self.batch, *x.shape[1:]).contiguous()
        with torch.no_grad():
            y = m.eval()(xb)
        proto = to_onnx(m, xb, dynamic_batch=False).SerializeToString()
        make = SESSIONS[self.runtime]
        plain = make(proto, xb.numpy(), list(y.shape), self.threads, None)
        # per-layer times inside the network: ORT's profiler only
        prof = (make(proto, xb.numpy(), list(y.shape), self.threads, profile_dir)
                if self.runtime == "ort" else None)
        return plain, prof

    def measure_jointly(self, models: dict[str, tuple[nn.Module, torch.Tensor]],
                        repeats: int = 1) -> dict:
        """End-to-end median ms of each (model, example at batch 1) at this table's batch, a
        fresh lone kernel time for each of their layers, and (ORT) each layer's kernel time
        inside its network (a profiled twin of the network session), all interleaved in one
        run: on a machine that drifts (or is shared) the sides of a comparison see the same
        load. repeats > 1: that many runs (ROUNDS rounds each), every time pooled by median.
        Returns {name: Joint}; the cache is left as it is."""
        if repeats == 1:
            return self._joint_run(models, self.ROUNDS * 2)
        runs = [self._joint_run(models, self.ROUNDS) for _ in range(repeats)]
        return {n: _pooled([r[n] for r in runs]) for n in models}

    def _joint_run(self, models: dict, rounds: int) -> dict:
        import tempfile

        specs = {n: [s for _, s in layer_specs(m, x)] for n, (m, x) in models.items()}
        uniq = list(dict.fromkeys(s for ss in specs.values() for s in ss))
        with tempfile.TemporaryDirectory() as prof:
            nets = {n: self._network_sessions(m, x, prof) for n, (m, x) in models.items()}
            twins = [p for _, p in nets.values() if p is not None]
            layers = [self._session(s, prof) for s in uniq]
            meds = interleaved_medians([s.run for s in [*(p for p, _ in nets.values()),
                                                        *twins, *layers]],
                                       rounds, self.RUNS_PER_ROUND, self.WARMUP)
            fresh = {s: sess.kernel_ms(self.WARMUP, self.quantile)
                     for s, sess in zip(uniq, layers, strict=True)}
            inside = {n: _in_network(p, len(specs[n]), self.WARMUP) if p is not None else None
                      for n, (_, p) in nets.items()}
        return {n: Joint(meds[i] * 1e3, [fresh[s] for s in specs[n]], inside[n],
                         self.weight_mb(specs[n]), [self.weight_mb([s]) for s in specs[n]])
                for i, n in enumerate(nets)}

    def calibrate(self, models: dict[str, tuple[nn.Module, torch.Tensor]],
                  repeats: int | None = None) -> dict:
        """Fit the layer terms (scale, per_mb) by least squares on every layer of `models` whose
        in-network time was read, then per_layer and base on the networks' unprofiled runs
        (`_fit_rest`; give ≥ 8 networks for the per-layer term); each network and its layers
        measured together, `repeats` (default REPEATS) interleaved runs pooled by median;
        saved with the table (with `networks` and the leave-one-out error: calibration_info),
        and the pooled lone times as the entries of those layers."""
        by_name = self.measure_jointly(models, repeats or self.REPEATS)
        joint = list(by_name.values())
        self.overheads[self._calib_key()] = {**fit_calibration(joint), "networks": len(joint),
                                             "loo_error": _loo_error(joint)}
        # the fit is made on these pooled lone times: they replace the entries of the same
        # layers, swept once (and maybe in a slow spell), so that predict() on a calibration
        # network is the fit's own prediction
        for n, (m, x) in models.items():
            for (_, spec), ms in zip(layer_specs(m, x), by_name[n].alone, strict=True):
                self.entries[self._key(spec)] = ms
        self.save()
        return self.calibration

    def check(self, models: dict[str, tuple[nn.Module, torch.Tensor]],
              repeats: int | None = None) -> list[dict]:
        """Predicted vs measured end-to-end for each model. `error` compares the network with
        its layers timed in the same run (+ calibration); `error_cached` uses the table's
        stored entries, measured earlier (it also carries the machine's drift since then)."""
        joint = self.measure_jointly(models, repeats or self.REPEATS)
        rows = []
        for n, (m, x) in models.items():
            j = joint[n]
            cached = self.predict(m, x).total_ms
            pred = self.total(j.layers_ms, j.count, j.weight_mb)
            rows.append({"model": n, "measured_ms": j.net_ms, "predicted_ms": pred,
                         "cached_ms": cached, "error": (pred - j.net_ms) / j.net_ms,
                         "error_cached": (cached - j.net_ms) / j.net_ms})
        return rows


@dataclass
class Joint:
    """One network of a joint run: end-to-end ms, each layer alone (ms, call order), each
    layer inside the network (None: not read), weights in MB (all, and per layer)."""

    net_ms: float
    alone: list[float]
    inside: list[float] | None
    weight_mb: float
    layer_mb: list[float]

    @property
    def layers_ms(self) -> float:
        return float(sum(self.alone))

    @property
    def count(self) -> int:
        return len(self.alone)


def _in_network(sess, n_layers: int, skip: int) -> list[float] | None:
    """Each layer's kernel ms inside the network, when the profile names exactly one node per
    table layer (an attention MatMul, say, would break the pairing: then none)."""
    if not hasattr(sess, "layer_node_ms"):
        return None
    ms = sess.layer_node_ms(skip)
    return ms if len(ms) == n_layers else None


def _pooled(runs: list[Joint]) -> Joint:
    """One network's joint runs pooled: the median of each time across runs."""
    med = lambda rows: [float(v) for v in np.median(np.array(rows), 0)]  # noqa: E731
    inside = None if any(j.inside is None for j in runs) else med([j.inside for j in runs])
    return Joint(float(np.median([j.net_ms for j in runs])), med([j.alone for j in runs]),
                 inside, runs[0].weight_mb, runs[0].layer_mb)


FIT_IDENTITY = {"scale": 1.0, "per_mb": 0.0, "per_layer": 0.0, "base": 0.0}  # total = Σ kernels


def _apply(c: dict, layers_ms: float, n_layers: int, weight_mb: float) -> float:
    """The calibrated total. A fitted negative base can undercut a tiny network: never below
    half its kernels (a run cannot be cheaper than the work it does)."""
    return max(c["scale"] * layers_ms + c["per_mb"] * weight_mb + c["per_layer"] * n_layers
               + c["base"], 0.5 * layers_ms)


def fit_calibration(joint: list[Joint]) -> dict:
    """{'scale', 'per_mb', 'per_layer', 'base'} fitted on jointly measured networks."""
    scale, per_mb, c = _fit_layers(joint)
    per_layer, base = _fit_rest(joint, scale, per_mb, c)
    return {"scale": scale, "per_mb": per_mb, "per_layer": per_layer, "base": base}


def _loo_error(joint: list[Joint]) -> float | None:
    """Mean |relative error| of each network predicted by the fit on the others: what the
    calibration is worth on a network it has not seen, at no extra measurement."""
    if len(joint) < 3:
        return None
    errs = []
    for i, j in enumerate(joint):
        c = fit_calibration(joint[:i] + joint[i + 1:])
        errs.append(abs(_apply(c, j.layers_ms, j.count, j.weight_mb) - j.net_ms) / j.net_ms)
    return float(np.mean(errs))


MIN_NETS_FOR_PER_LAYER = 8  # networks needed to fit the per-layer term on whole runs


def _fit_rest(joint: list[Joint], scale: float, per_mb: float, c: float) -> tuple[float, float]:
    """(per_layer, base): what whole (unprofiled) runs cost beyond the fitted layers. The
    in-network intercept `c` comes from profiled runs, whose per-node events inflate it, so
    with enough networks of spread layer counts the per-layer term is refitted on the runs'
    residuals (least squares over per_layer · layers + base; measured on ResNet-like and
    MobileNetV2-like nets at batch 1: 4–11 % mean error where c and a median base gave
    5–20 %). Each network's row is weighted by 1 / its time, so the fit minimises the
    relative error, the one reported: unweighted, the 3–5 ms networks of a family set the
    terms and the 0.6 ms ones came out 16–23 % high (ResNet-like; weighted, two sets of joint
    runs on AMD EPYC: 12.7 → 6.9 % and 7.6 → 6.7 % mean on held-out nets, digits 2.4 → 2.1 %
    and 3.3 → 1.7 %, MobileNetV2-like 11.5 → 12.6 % and 8.7 → 10.4 %). With fewer, c stays
    and base is the median residual: a per-layer term fitted on a handful of networks chases
    their noise."""
    rest = np.array([j.net_ms - (scale * j.layers_ms + per_mb * j.weight_mb) for j in joint])
    counts = np.array([j.count for j in joint], dtype=float)
    if len(joint) >= MIN_NETS_FOR_PER_LAYER and np.ptp(counts) > 0:
        w = 1.0 / np.array([j.net_ms for j in joint])
        rows = np.stack([counts, np.ones_like(counts)], 1) * w[:, None]
        per_layer, base = np.linalg.lstsq(rows, rest * w, rcond=None)[0]
        return float(per_layer), float(base)
    return c, float(np.median(rest - c * counts))


def _fit_layers(joint: list[Joint]) -> tuple[float, float, float]:
    """(scale, per_mb, c) of  inside = scale · alone + per_mb · MB + c, least squares over
    every layer read inside its network; (1, 0, 0) when fewer than 8 were. Few or tiny layers
    cannot separate the three terms (noise can make the scale negative): a fit with its scale
    outside [0.5, 2] or a negative per_mb falls back to the plain ratio Σ inside / Σ alone."""
    rows = [(a, mb, t) for j in joint if j.inside is not None
            for a, mb, t in zip(j.alone, j.layer_mb, j.inside, strict=True)]
    if len(rows) < 8:
        return 1.0, 0.0, 0.0
    a = np.array(rows)
    x = np.stack([a[:, 0], a[:, 1], np.ones(len(a))], 1)
    scale, per_mb, c = np.linalg.lstsq(x, a[:, 2], rcond=None)[0]
    if not (0.5 <= scale <= 2.0 and per_mb >= 0):
        return float(a[:, 2].sum() / a[:, 0].sum()), 0.0, 0.0
    return float(scale), float(per_mb), float(c)


__all__ = ["KINDS", "PRECISIONS", "RUNTIMES", "LatencyTable", "LayerSpec", "Prediction",
           "fit_calibration", "interleaved_medians", "layer_onnx", "layer_specs"]
