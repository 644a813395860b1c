"""sk.save / sk.load: one artifact for every model slimkit makes.

    sk.save(q, "digits-int8")                    # a directory:
        manifest.json          format version, slimkit / torch versions, how to rebuild the
                               structure (source factory or class + the record's steps), the
                               quantization plan, checksums
        weights.safetensors    every tensor of the state_dict — packed integer codes stay
                               packed, sparse weights as their index / value arrays; no pickle
        model.onnx             (with example_inputs=) the code-free deployable form
    sk.save(q, "digits-int8.zip")                # the same files as one archive (to ship or
                                                 # upload; unzipped, it is the directory form)
    q = sk.load("digits-int8")                   # a fresh process, no calibration data

Loading builds the source model (importing the named factory or class — the only code it
runs), replays each recorded step's *structure* (prune shapes, BN folds, quantized wrappers,
sparse and kernel layers; each technique registers its rebuild in slimkit.record), then loads
the weights strictly: the result is bit-identical to the model that was saved. `sk.save`
replays the same way before writing, so an artifact it cannot load back is never written.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import os
import platform
import shutil
import tempfile
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from slimkit.atomic import WriteError, atomic_dir, atomic_path
from slimkit.deploy import export
from slimkit.errors import SlimkitError
from slimkit.factory import import_attr
from slimkit.record import (
    CODECS,
    REBUILDS,
    SAVE_CHECKS,
    ModelRecord,
    Step,
    copy_model,
    record_of,
    set_record,
    step_module,
)

FORMAT, VERSION = "slimkit.artifact", 1
MANIFEST, WEIGHTS, ONNX = "manifest.json", "weights.safetensors", "model.onnx"
_MASK = "__mask__::"
_SPARSE_PARTS = {torch.sparse_csr: ("crow_indices", "col_indices", "values"),
                 torch.sparse_csc: ("ccol_indices", "row_indices", "values"),
                 torch.sparse_bsr: ("crow_indices", "col_indices", "values")}
_LAYOUTS = {"csr": torch.sparse_csr, "csc": torch.sparse_csc, "bsr": torch.sparse_bsr}
ARCHIVE = ".zip"  # a path ending so is written as one archive instead of a directory
# In an archive, members up to this size are deflated: on a small model the manifest and the
# safetensors header (≈ 90 bytes a tensor) would otherwise outweigh the packed weights. Larger
# members are stored: integer codes barely compress, and deflating 50 MB costs seconds.
_DEFLATE_BELOW = 1 << 20


class ArtifactError(SlimkitError):
    """A path is not a (complete, intact, compatible) slimkit artifact, or cannot become one."""


# Artifacts written before the manifest named each step's module: where those kinds live.
LEGACY_STEPS = {
    **dict.fromkeys(("quantize", "convert"), "slimkit.quant.flows"),
    "prune": "slimkit.pruning.api", "drop_blocks": "slimkit.pruning.depth",
    "sparsify": "slimkit.sparse.policy", "kernels": "slimkit.deploy.kernels",
    **dict.fromkeys(("cle", "smoothquant", "awq", "gptq", "adaround", "bias_correction",
                     "log2_activations"), "slimkit.quant.algorithms.steps"),
}


def _registered(steps: list[dict]) -> None:
    """Import the modules that register the steps' rebuilds — named by the manifest (or, for
    older artifacts, by LEGACY_STEPS); only slimkit's own modules are imported this way."""
    for s in steps:
        if s["kind"] in REBUILDS:
            continue
        module = s.get("module") or LEGACY_STEPS.get(s["kind"])
        if not module or not module.startswith("slimkit."):
            raise ArtifactError(f"step '{s['kind']}' has no rebuild registered and the "
                                f"manifest names no slimkit module for it (got {module!r})")
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ArtifactError(f"step '{s['kind']}': cannot import {module} ({e}), which "
                                "rebuilds it") from e


# ---- save -----------------------------------------------------------------------------------
def save(model: nn.Module, path: str | os.PathLike, *, factory: str | None = None,
         kwargs: dict | None = None, template: nn.Module | None = None,
         example_inputs=None, onnx_file: str | os.PathLike | None = None) -> Path:
    """Write `model` as an artifact directory at `path` (atomically; an earlier artifact there
    is replaced, anything else refused). factory='package.module:function' (+ kwargs) names how
    to build the uncompressed structure; by default the record's source or the model's class.
    template: an uncompressed instance instead, for a structure no factory builds (then
    `sk.load(path, model=...)` needs one too). example_inputs also writes model.onnx;
    onnx_file: an ONNX file already exported from this model, copied in instead."""
    for check in SAVE_CHECKS:
        why = check(model)
        if why:
            raise ArtifactError(why)
    rec = copy.deepcopy(record_of(model, create=False) or ModelRecord())
    rec.source = _source(model, rec, factory, kwargs)
    state = model.state_dict()
    tensors, sparse, aliases = _flatten(state, rec.masks)
    _check_rebuild(rec, state, template)  # never write an artifact that cannot load back
    manifest = _manifest(rec, tensors, sparse, aliases)
    if str(path).endswith(ARCHIVE):
        _write_archive(Path(path), tensors, manifest, model, example_inputs, onnx_file)
    else:
        with atomic_dir(path, _is_artifact) as tmp:
            _write_files(tmp, tensors, manifest, model, example_inputs, onnx_file)
    return Path(path)


def _write_files(d: Path, tensors: dict, manifest: dict, model, example_inputs,
                 onnx_file) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(d / WEIGHTS))
    manifest["weights"]["sha256"] = _sha256(d / WEIGHTS)
    manifest["weights"]["bytes"] = (d / WEIGHTS).stat().st_size
    if onnx_file is not None:
        shutil.copyfile(onnx_file, d / ONNX)
        manifest["deploy"] = {"onnx": ONNX}
    elif example_inputs is not None:
        export(model, example_inputs, d / ONNX)
        manifest["deploy"] = {"onnx": ONNX}
    (d / MANIFEST).write_text(json.dumps(manifest, separators=(",", ":"), sort_keys=True))


def _write_archive(path: Path, tensors: dict, manifest: dict, model, example_inputs,
                   onnx_file) -> None:
    if path.exists() and not _is_archive(path):
        raise WriteError(f"{path} exists and is not a slimkit artifact: refusing to overwrite it")
    with tempfile.TemporaryDirectory() as d, atomic_path(path) as tmp:
        _write_files(Path(d), tensors, manifest, model, example_inputs, onnx_file)
        with zipfile.ZipFile(tmp, "w") as z:
            for f in sorted(Path(d).iterdir(), key=lambda f: f.name != MANIFEST):
                small = f.stat().st_size < _DEFLATE_BELOW
                z.write(f, f.name, zipfile.ZIP_DEFLATED if small else zipfile.ZIP_STORED)


def _source(model: nn.Module, rec: ModelRecord, factory: str | None, kwargs: dict | None):
    if factory is not None:
        _check_factory_name(factory)
        return {"factory": factory, "kwargs": dict(kwargs or {})}
    if rec.source is not None:
        return rec.source
    if isinstance(model, torch.fx.GraphModule):
        raise ArtifactError("cannot tell which class this traced model was built from: pass "
                            "factory='package.module:function'")
    cls = type(model)
    return {"class": f"{cls.__module__}:{cls.__qualname__}", "kwargs": dict(kwargs or {})}


def _flatten(state: dict, masks: dict):
    """state_dict → flat dense tensors for safetensors (sparse split into parts, tied tensors
    stored once), plus the sparse layouts and the aliases to restore them."""
    tensors, sparse, aliases, seen = {}, {}, {}, {}
    for name, t in state.items():
        if t.layout in _SPARSE_PARTS:
            layout = next(k for k, v in _LAYOUTS.items() if v == t.layout)
            sparse[name] = {"layout": layout, "shape": list(t.shape)}
            for part in _SPARSE_PARTS[t.layout]:
                tensors[f"{name}::{part}"] = getattr(t, part)().contiguous()
            continue
        key = (t.data_ptr(), t.dtype, tuple(t.shape), t.stride()) if t.numel() else None
        if key is not None and key in seen:
            aliases[name] = seen[key]
            continue
        if key is not None:
            seen[key] = name
        tensors[name] = t.detach().contiguous()
    for name, m in masks.items():
        tensors[_MASK + name] = m.to(torch.uint8).contiguous()
    return tensors, sparse, aliases


def _manifest(rec: ModelRecord, tensors: dict, sparse: dict, aliases: dict) -> dict:
    return {
        "format": FORMAT, "version": VERSION,
        "slimkit": _version("slimkit"), "torch": torch.__version__,
        "python": platform.python_version(),
        "source": rec.source,
        "steps": [{**s.to_dict(), "module": step_module(s.kind)} for s in rec.steps],
        "arch": rec.arch,
        "plan": None if rec.plan is None else CODECS["plan"][0](rec.plan),
        "masks": sorted(rec.masks),
        "weights": {"file": WEIGHTS, "tensors": len(tensors)},
        "sparse": sparse, "aliases": aliases, "deploy": {},
    }


# ---- load -----------------------------------------------------------------------------------
def load(path: str | os.PathLike, model: nn.Module | None = None) -> nn.Module:
    """The model saved at `path`, bit-identical, in eval mode. `model`: an uncompressed
    instance to rebuild from instead of the manifest's factory (it is not modified)."""
    path = Path(path)
    with _Files(path) as files:
        manifest = _parse_manifest(files)
        flat = files.weights(WEIGHTS, manifest["weights"]["sha256"])  # not a path it names
    rec = _record(manifest)
    base = copy_model(model) if model is not None else build_source(rec.source)
    if model is not None:
        _check_class(model, rec.source)
    try:
        skeleton = rebuild(base, rec)
    except ArtifactError:
        raise
    except Exception as e:  # noqa: BLE001 — the source does not fit the recorded steps
        raise ArtifactError(f"cannot rebuild {path} from {rec.source}: {type(e).__name__}: {e}; "
                            "pass model= (an uncompressed instance it was saved from)") from e
    state = _read_state(flat, manifest, rec, path)
    own = skeleton.state_dict()
    _check_state(own, state, str(path))
    # the modules' state-dict versions (safetensors keeps none): a module that upgrades old
    # layouts on load (torchvision's MNASNet) reads them and refuses a dict without
    state = OrderedDict(state)
    state._metadata = getattr(own, "_metadata", None)
    skeleton.load_state_dict(state, strict=True)
    set_record(skeleton, rec)
    return skeleton.eval()


class _Files:
    """An artifact's files, in a directory or in one zip archive."""

    def __init__(self, path: Path):
        self.path, self.zip = path, None
        if path.is_file() and zipfile.is_zipfile(path):
            try:
                self.zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as e:
                raise ArtifactError(f"{path} is an unreadable archive ({e})") from e
        if not self.has(MANIFEST):
            self.close()
            raise ArtifactError(f"{path} is not a slimkit artifact (no {MANIFEST} inside); "
                                "sk.save(model, path) writes one")

    def __enter__(self) -> _Files:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()

    def has(self, name: str) -> bool:
        if self.zip is not None:
            return name in self.zip.namelist()
        return (self.path / name).is_file()

    def read(self, name: str) -> bytes:
        try:
            return self.zip.read(name) if self.zip is not None else (self.path / name).read_bytes()
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:  # CRC, length, deflate
            raise ArtifactError(f"{self.path}: {name} is unreadable ({e}): the artifact is "
                                "truncated or corrupted; nothing was loaded") from e

    def weights(self, name: str, sha256: str) -> dict:
        """The named safetensors file's tensors, after its checksum agrees with the manifest."""
        from safetensors import SafetensorError
        from safetensors.torch import load, load_file

        if not self.has(name):
            raise ArtifactError(f"{self.path}: the weights file {name} is missing")
        data = self.read(name) if self.zip is not None else None
        digest = hashlib.sha256(data).hexdigest() if data is not None else \
            _sha256(self.path / name)
        if digest != sha256:
            raise ArtifactError(f"{self.path / name}: checksum mismatch — the file is truncated "
                                "or corrupted; nothing was loaded")
        try:  # a directory's file is memory-mapped; an archive's member is already in memory
            return load(data) if data is not None else load_file(str(self.path / name))
        except (SafetensorError, OSError, ValueError) as e:
            raise ArtifactError(f"{self.path / name} is unreadable ({e})") from e


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of the artifact at `path` (directory or archive), checked for format."""
    with _Files(Path(path)) as files:
        return _parse_manifest(files)


def _parse_manifest(files: _Files) -> dict:
    where = files.path / MANIFEST
    try:
        manifest = json.loads(files.read(MANIFEST))
    except (ValueError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{where} is not valid JSON ({e}): the manifest is corrupted") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{where} is not a slimkit artifact manifest (format "
                            f"{manifest.get('format') if isinstance(manifest, dict) else '?'})")
    if not isinstance(manifest.get("version"), int) or manifest["version"] > VERSION:
        raise ArtifactError(f"{files.path} was written by a newer slimkit "
                            f"({manifest.get('slimkit')}, artifact format "
                            f"{manifest.get('version')}); this slimkit reads format ≤ "
                            f"{VERSION}: upgrade slimkit")
    return manifest


def _record(manifest: dict) -> ModelRecord:
    _registered(manifest["steps"])  # before the plan: the modules register its codec too
    steps = [Step(s["kind"], s["config"], s.get("note", "")) for s in manifest["steps"]]
    if manifest["plan"] is not None and "plan" not in CODECS:
        raise ArtifactError("the manifest holds a quantization plan but no step that reads it")
    plan = None if manifest["plan"] is None else CODECS["plan"][1](manifest["plan"])
    return ModelRecord(manifest["source"], steps, manifest["arch"], {}, plan)


def build_source(source: dict | None) -> nn.Module:
    """The uncompressed model the manifest names (factory or class), built with its kwargs."""
    if not source:
        raise ArtifactError("the artifact names no source model: pass model= to sk.load")
    spec = source.get("factory") or source.get("class")
    _check_factory_name(spec)
    try:
        obj = import_attr(spec)
    except (ImportError, AttributeError) as e:
        raise ArtifactError(f"cannot import {spec!r}, which builds this artifact's model "
                            f"({type(e).__name__}: {e}); install or put its code on PYTHONPATH, "
                            f"or pass model= (an uncompressed instance) to sk.load") from e
    try:
        model = obj(**source.get("kwargs", {}))
    except Exception as e:  # noqa: BLE001 — user code: report what failed and how to go on
        raise ArtifactError(f"{spec}(**{source.get('kwargs', {})}) failed: "
                            f"{type(e).__name__}: {e}; pass model= to sk.load") from e
    if not isinstance(model, nn.Module):
        raise ArtifactError(f"{spec} returned {type(model).__name__}, not an nn.Module")
    return model


def rebuild(model: nn.Module, rec: ModelRecord) -> nn.Module:
    """Replay every recorded step's structure on `model` (values are placeholders)."""
    _registered([{"kind": s.kind} for s in rec.steps])
    model.eval()
    for step in rec.steps:
        fn = REBUILDS.get(step.kind)
        if fn is None:
            raise ArtifactError(f"step '{step.kind}' has no rebuild registered; known: "
                                f"{sorted(REBUILDS)}")
        model = fn(model, step, rec)
    return model


def _read_state(flat: dict, manifest: dict, rec: ModelRecord, where: Path) -> dict:
    state = {}
    for name, info in manifest["sparse"].items():
        parts = [flat.pop(f"{name}::{p}") for p in _SPARSE_PARTS[_LAYOUTS[info["layout"]]]]
        ctor = {"csr": torch.sparse_csr_tensor, "csc": torch.sparse_csc_tensor,
                "bsr": torch.sparse_bsr_tensor}[info["layout"]]
        try:  # a file's indices are checked: a bad one must not reach a kernel (segfault)
            state[name] = ctor(*parts, size=info["shape"], check_invariants=True)
        except RuntimeError as e:
            raise ArtifactError(f"{where}: sparse tensor '{name}' is malformed ({e})") from e
    for name in manifest["masks"]:
        rec.masks[name] = flat.pop(_MASK + name).bool()
    state.update(flat)
    for alias, original in manifest["aliases"].items():
        state[alias] = state[original]
    return state


def _check_state(expected: dict, state: dict, where: str) -> None:
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ArtifactError(f"{where}: the weights do not match the rebuilt model — missing "
                            f"{missing[:5]}{' …' if len(missing) > 5 else ''}, unexpected "
                            f"{extra[:5]}{' …' if len(extra) > 5 else ''}")
    for k, t in state.items():
        if tuple(t.shape) != tuple(expected[k].shape):
            raise ArtifactError(f"{where}: tensor '{k}' has shape {tuple(t.shape)} in the file "
                                f"but {tuple(expected[k].shape)} in the rebuilt model: is the "
                                "source model (factory, kwargs) the one it was saved from?")


def _check_rebuild(rec: ModelRecord, state: dict, template: nn.Module | None) -> None:
    try:
        base = copy_model(template) if template is not None else build_source(rec.source)
        skeleton = rebuild(base, rec)
    except ArtifactError:
        raise
    except Exception as e:  # noqa: BLE001 — any failure means sk.load would fail too
        raise ArtifactError(f"cannot rebuild the model from {rec.source}: {type(e).__name__}: "
                            f"{e}; pass factory= (and kwargs=) naming how it is built, or "
                            "template= (an uncompressed instance)") from e
    try:
        _check_state(skeleton.state_dict(), state, "sk.save")
    except ArtifactError as e:
        raise ArtifactError(f"{e} — pass factory=/kwargs= (the source is {rec.source})") from e


def _check_class(model: nn.Module, source: dict) -> None:
    want = (source or {}).get("class", "").rpartition(":")[2]
    if want and type(model).__qualname__ != want:
        raise ArtifactError(f"the artifact was saved from a {want}; model= is a "
                            f"{type(model).__qualname__}")


def _check_factory_name(spec) -> None:
    if not isinstance(spec, str) or ":" not in spec or not spec.partition(":")[2]:
        raise ArtifactError(f"factory={spec!r} must look like 'package.module:function'")


def _is_artifact(path: Path) -> bool:
    return (path / MANIFEST).is_file() or (path.is_dir() and not any(path.iterdir()))


def _is_archive(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return MANIFEST in z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _version(pkg: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None
