"""What the run measures about a model besides its metric, each once: MACs (by structure),
the exported ONNX file (by weights), and a quick latency probe (by structure)."""

from __future__ import annotations

import tempfile
import weakref
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slimkit.atomic import write_atomic
from slimkit.batch import as_args, take
from slimkit.deploy import export
from slimkit.deploy.versions import OPSET
from slimkit.graph.deps import DependencyError, DependencyGraph
from slimkit.latency.measure import Candidate, measure
from slimkit.quant.modules import QuantLayer


class RuntimeModule(nn.Module):
    """A runtime session as a module, so the recipe's metric can measure it."""

    def __init__(self, sess) -> None:
        super().__init__()
        self.sess = sess

    def forward(self, *args, **kwargs) -> torch.Tensor:
        xs = tuple(a.numpy() for a in (*args, *kwargs.values()))
        return torch.from_numpy(np.asarray(self.sess.run(xs)))


def structure_key(model: nn.Module) -> tuple:
    """What MACs and latency depend on — module types and tensor shapes, not the values: a
    distilled student has its input's, so neither is measured twice."""
    return (tuple((n, type(m).__name__) for n, m in model.named_modules()),
            tuple((n, tuple(t.shape), t.dtype) for n, t in model.state_dict().items()))


def example_args(x, n: int | None = None) -> tuple:
    """A batch's inputs as positional arguments (a dict in its key order), first n rows."""
    return as_args(take(x, n))


class Measurements:
    """Caches keyed so nothing is measured twice: MACs and probes by structure, ONNX files by
    the model object and its weights (a model trained in place is exported again)."""

    def __init__(self, example, threads: int) -> None:
        self.example, self.threads = example, threads
        self._macs: dict[tuple, int | None] = {}  # structure_key → MACs
        self._probes: dict[tuple, float | None] = {}  # structure_key → probe ms
        self._onnx: dict[int, tuple] = {}  # id(model) → (weakref, fingerprint, opset, bytes)
        self._input_macs: int | None = None
        self._input_model: nn.Module | None = None  # MACs counted when first asked

    # ---- the MACs of the current stage's input ----------------------------------------------
    @property
    def input_macs(self) -> int | None:
        if self._input_macs is None and self._input_model is not None:
            model, self._input_model = self._input_model, None  # (a quantized source asks)
            self._input_macs = self.macs(model)
        return self._input_macs

    def set_input(self, macs: int | None = None, model: nn.Module | None = None) -> None:
        """The next stage's input: MACs known, or a model whose MACs are counted when first
        asked (a pruning stage counts them anyway, so usually no graph is built for them)."""
        self._input_macs, self._input_model = macs, model

    # ---- MACs --------------------------------------------------------------------------------
    def macs(self, model: nn.Module) -> int | None:
        """MACs from the dependency graph of a float model; a quantized one (or a runtime
        session) keeps its input's: quantization changes the bits, not the multiply count."""
        if isinstance(model, RuntimeModule) or any(isinstance(m, QuantLayer)
                                                   for m in model.modules()):
            return self.input_macs
        key = structure_key(model)
        if key not in self._macs:
            self._macs[key] = self._graph_macs(model)
        return self._macs[key]

    def known_macs(self, model: nn.Module, macs: int | None) -> None:
        """MACs a step already counted (the pruner's report): no graph built for them again."""
        if macs:
            self._macs[structure_key(model)] = macs

    def _graph_macs(self, model: nn.Module) -> int | None:
        try:
            return DependencyGraph.build(model, example_args(self.example, 1), "freeze").macs()
        except (DependencyError, Exception):  # noqa: BLE001 — MACs are informative only
            return None

    # ---- the exported file, and a quick probe of it --------------------------------------------
    def onnx(self, model: nn.Module, path: Path, opset: int | None = None) -> Path:
        """`model` exported to `path` (dynamic batch) — once per model in a run: the latency
        probe, the export stage and the final artifact share one export (≈ 1 s each)."""
        opset = opset or OPSET
        fp = _fingerprint(model)
        hit = self._onnx.get(id(model))
        if hit is not None and hit[0]() is model and hit[1:3] == (fp, opset):
            return write_atomic(path, hit[3])
        export(model, example_args(self.example), path, opset=opset)
        self._onnx[id(model)] = (weakref.ref(model), fp, opset, Path(path).read_bytes())
        return Path(path)

    @torch.no_grad()
    def latency_probe(self, model: nn.Module, runs: int = 20) -> float | None:
        """Median ms of the model in ONNX Runtime (fp32, or int8 where quantized) at the
        data's batch size — quick, one runtime for every attempt, for the report's
        metric-vs-latency plot (the benchmark stage measures kept models properly). A
        runtime session is timed as it is; a structure probed before is not probed again."""
        xs = tuple(t.numpy() for t in example_args(self.example))
        if isinstance(model, RuntimeModule):
            return _median_ms(model, xs, runs, self.threads)  # the session, as it is
        key = structure_key(model)
        if key in self._probes:
            return self._probes[key]
        try:
            with tempfile.TemporaryDirectory() as d:
                ms = _median_ms(self.onnx(model, Path(d) / "probe.onnx"), xs, runs,
                                self.threads)
        except Exception:  # noqa: BLE001 — a model that does not export has no probe
            ms = None
        self._probes[key] = ms
        return ms


@torch.no_grad()
def _fingerprint(model: nn.Module) -> tuple:
    """Changes when the weights do (a model trained in place after it was exported)."""
    return tuple(float(t.double().sum()) if t.is_floating_point() else int(t.sum())
                 for t in model.state_dict().values())


def _median_ms(model, xs: tuple, runs: int, threads: int) -> float:
    """Median ms of an ONNX file (or a runtime module) through the measurement core."""
    res = measure([Candidate("probe", model)], xs, rounds=4,
                  runs_per_round=max(1, runs // 4), threads=threads, target=None)
    return res.rows[0].median_ms


__all__ = ["Measurements", "RuntimeModule", "example_args", "structure_key"]
