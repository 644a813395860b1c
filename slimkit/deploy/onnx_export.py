"""sk.export: float or quantized slimkit models → one ONNX file, written atomically."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from slimkit.deploy.lowering import ExportError, lower
from slimkit.deploy.ops import translation_table

DEFAULT_OPSET = 20


def _as_args(example_inputs) -> tuple:
    return example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)


def to_onnx(model: nn.Module, example_inputs, dynamic_batch: bool = True,
            opset: int = DEFAULT_OPSET):
    """The ONNX ModelProto of `model` (QDQ where slimkit quantized it)."""
    import onnx

    from slimkit.deploy.onnx_qdq import insert_qdq

    float_model, layers = lower(model)
    args = _as_args(example_inputs)
    dyn = None
    if dynamic_batch:
        dyn = tuple({0: torch.export.Dim.DYNAMIC} if isinstance(a, torch.Tensor) else None
                    for a in args)
    with warnings.catch_warnings(), _quiet_exporter(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            prog = torch.onnx.export(float_model, args, dynamo=True, opset_version=opset,
                                     dynamic_shapes=dyn, verbose=False,
                                     custom_translation_table=translation_table())
        except Exception as e:  # noqa: BLE001 — the exporter's own errors are long; keep the cause
            raise ExportError(f"torch.onnx.export failed on {type(model).__name__}: "
                              f"{str(e).splitlines()[0]}") from e
    proto = insert_qdq(prog.model_proto, layers)
    _strip_debug_info(proto)
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
           dynamic_batch: bool = True, opset: int = DEFAULT_OPSET) -> Path:
    """Export to ONNX at `path`. Quantized layers become QuantizeLinear/DequantizeLinear
    around int8 weights; float models export as they are. The file appears whole or not at
    all (temp file + rename)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ExportError(f"cannot write {path}: directory {path.parent} does not exist")
    proto = to_onnx(model, example_inputs, dynamic_batch, opset)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(proto.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class _quiet_exporter:
    """The dynamo exporter logs progress and torchvision notices at WARNING; silence them."""

    def __enter__(self):
        names = ("torch.onnx", "torch._export", "torch.export")
        self.loggers = [logging.getLogger(n) for n in names]
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        for lg, lv in zip(self.loggers, self.levels, strict=True):
            lg.setLevel(lv)
