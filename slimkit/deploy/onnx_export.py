"""sk.export: float or quantized slimkit models → one ONNX file, written atomically."""

from __future__ import annotations

import functools
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from slimkit.atomic import write_atomic
from slimkit.batch import as_args
from slimkit.deploy.attention_graph import drop_nan_guards
from slimkit.deploy.emulate import saturation_report
from slimkit.deploy.fast_decompose import skip_needless_decomposition
from slimkit.deploy.lowering import ExportError, lower
from slimkit.deploy.onnx_qdq import insert_qdq
from slimkit.deploy.ops import translation_table
from slimkit.deploy.qdq_place import place
from slimkit.deploy.versions import OPSET, fit
from slimkit.target import Target, resolve_target


def to_onnx(model: nn.Module, example_inputs, dynamic_batch: bool = True,
            opset: int = OPSET, runtime: str = "any"):
    """The ONNX ModelProto of `model` (QDQ where slimkit quantized it, placed the way
    `runtime` fuses best: deploy/qdq_place.py)."""
    import onnx

    float_model, layers = lower(model)
    args = as_args(example_inputs)
    dyn = None
    if dynamic_batch:
        dyn = tuple({0: torch.export.Dim.DYNAMIC} if isinstance(a, torch.Tensor) else None
                    for a in args)
    with (warnings.catch_warnings(), _quiet_exporter(), _reuse_torchlib(),
          skip_needless_decomposition(), torch.no_grad()):
        warnings.simplefilter("ignore")
        try:
            prog = torch.onnx.export(float_model, args, dynamo=True, opset_version=opset,
                                     dynamic_shapes=dyn, verbose=False,
                                     custom_translation_table=translation_table())
        except Exception as e:  # noqa: BLE001 — the exporter's own errors are long; keep the cause
            raise ExportError(f"torch.onnx.export failed on {type(model).__name__}: "
                              f"{str(e).splitlines()[0]}") from e
    proto = insert_qdq(prog.model_proto, layers)
    drop_nan_guards(proto)
    if layers:
        place(proto, runtime)
    _strip_debug_info(proto)
    fit(proto)
    onnx.checker.check_model(proto)
    return proto


def _strip_debug_info(proto) -> None:
    """The exporter annotates every node with module paths and fx source (tens of kB on a
    small model); a deployment file does not need them."""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del proto.graph.value_info[:]


def export(model: nn.Module, example_inputs, path: str | os.PathLike, *,
           dynamic_batch: bool = True, opset: int = OPSET,
           target: str | Target | None = "auto", runtime: str = "any") -> Path:
    """Export to ONNX at `path`. Quantized layers become QuantizeLinear/DequantizeLinear
    around int8 weights, placed the way `runtime` ('any', 'ort', 'openvino') fuses best;
    float models export as they are. The file appears whole or not at
    all (temp file + rename). On a `target` whose int8 kernels saturate (x86 without VNNI)
    a weight range they cannot compute exactly is reported with a SaturationWarning."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ExportError(f"cannot write {path}: directory {path.parent} does not exist")
    proto = to_onnx(model, example_inputs, dynamic_batch, opset, runtime)
    if target is not None:
        warn_if_saturates(proto, resolve_target(target), stacklevel=3)
    write_atomic(path, proto.SerializeToString())  # WriteError (an OSError) names the path
    return path


class SaturationWarning(UserWarning):
    """An exported int8 layer overflows the int16 pair sums of the target's kernels."""


def warn_if_saturates(proto, target: Target, stacklevel: int = 2) -> list[str]:
    """Names of the weights whose products saturate on `target` (warned about), or []."""
    if not target.u8s8_pairs_saturate:
        return []
    bad = [s for s in saturation_report(proto) if s.saturates]
    if bad:
        names = ", ".join(s.weight for s in bad[:4]) + (" …" if len(bad) > 4 else "")
        warnings.warn(SaturationWarning(
            f"{len(bad)} int8 layer(s) ({names}) use 8-bit weights that {target.model} "
            f"({target.isa()}) cannot multiply exactly: its kernels add u8×s8 pairs in int16 "
            f"(worst pair {max(s.worst_pair for s in bad):,} > 32,767) and the runtime will "
            "disagree with the simulation; quantize with target='auto' on the deployment CPU, "
            "or target='portable' for any x86"), stacklevel=stacklevel)
    return [s.weight for s in bad]


@functools.cache
def _torchlib(opset_version: int):
    """torch.onnx rebuilds its ATen → ONNX registry from torchlib on every export (≈1 s,
    thousands of onnxscript functions); build it once per process and hand each export a
    shallow copy (so the custom ops one export registers never leak into the next)."""
    from torch.onnx._internal.exporter import _registration

    return _FROM_TORCHLIB[0].__func__(_registration.ONNXRegistry, opset_version)


_FROM_TORCHLIB: list = []


class _reuse_torchlib:
    """Serve torch.onnx's registry from the cache above; any mismatch with this torch's
    internals and export simply builds its own, as without slimkit."""

    def __enter__(self):
        try:
            from torch.onnx._internal.exporter import _registration
        except ImportError:
            self.cls = None
            return self
        self.cls = _registration.ONNXRegistry
        if not _FROM_TORCHLIB:
            _FROM_TORCHLIB.append(self.cls.__dict__["from_torchlib"])

        def from_torchlib(cls, opset_version=None, **kw):
            if kw or opset_version is None:
                return _FROM_TORCHLIB[0].__func__(cls, *(
                    () if opset_version is None else (opset_version,)), **kw)
            base = _torchlib(opset_version)
            fresh = cls()
            fresh._opset_version = base._opset_version
            fresh.functions = {k: list(v) for k, v in base.functions.items()}
            return fresh

        self.cls.from_torchlib = classmethod(from_torchlib)
        return self

    def __exit__(self, *exc):
        if self.cls is not None:
            self.cls.from_torchlib = _FROM_TORCHLIB[0]


class _quiet_exporter:
    """The dynamo exporter logs progress and torchvision notices at WARNING; silence them."""

    def __enter__(self):
        # onnxscript's constant folder logs "Evaluation failed: …" for nodes it cannot fold
        # (e.g. a Reshape of a dynamic batch) — not an export failure; keep it off the terminal
        names = ("torch.onnx", "torch._export", "torch.export", "onnxscript", "onnx_ir")
        self.loggers = [logging.getLogger(n) for n in names]
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        for lg, lv in zip(self.loggers, self.levels, strict=True):
            lg.setLevel(lv)
