"""What a recipe names, built: the model (factory, torchvision, a Hugging Face directory), the
data (digits, an image folder, text lines, a factory) and the metric (top-1, embedding cosine
vs the original model, a factory)."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from slimkit.batch import call_model
from slimkit.factory import import_attr
from slimkit.pipeline.recipe import DataSpec, EvalSpec, ModelSpec, RecipeError
from slimkit.record import record_of


def import_object(spec: str, what: str):
    """'package.module:attr' from the working directory or PYTHONPATH."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # recipes name the user's own modules
    try:
        obj = import_attr(spec)
    except (ImportError, AttributeError) as e:
        raise RecipeError(f"{what}: cannot import {spec!r} ({type(e).__name__}: {e}); is its "
                          "module on PYTHONPATH or in the working directory?") from e
    if not callable(obj):
        raise RecipeError(f"{what}: {spec!r} is not callable")
    return obj


# ---- model ----------------------------------------------------------------------------------
def build_model(spec: ModelSpec) -> nn.Module:
    """The source model, its record naming how to build it again (for sk.load)."""
    if spec.factory:
        factory, kwargs = spec.factory, dict(spec.kwargs)
    elif spec.torchvision:
        try:
            import torchvision  # noqa: F401
        except ImportError as e:
            raise RecipeError("model.torchvision: torchvision is not importable here; install "
                              "a torch/torchvision pair that import together") from e
        factory, kwargs = f"torchvision.models:{spec.torchvision}", {"weights": None,
                                                                    **spec.kwargs}
    else:
        factory = "slimkit.models.hf:sentence_encoder"
        kwargs = {"path": str(Path(spec.hf).resolve()), **spec.kwargs}
    model = import_object(factory, "model.factory")(**kwargs)
    if not isinstance(model, nn.Module):
        raise RecipeError(f"model.factory: {factory} returned {type(model).__name__}, "
                          "not a torch.nn.Module")
    if spec.weights:
        load_weights(model, Path(spec.weights))
    record_of(model).source = {"factory": factory, "kwargs": kwargs}
    return model.eval()


def load_weights(model: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise RecipeError(f"model.weights: {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:  # never unpickle code: tensors and plain containers only
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as e:
        raise RecipeError(f"model.weights: {path} does not fit the model: "
                          f"{str(e).splitlines()[0]}") from e


# ---- data -----------------------------------------------------------------------------------
@dataclass
class Data:
    train: Dataset  # what the Trainer draws batches from
    val: DataLoader  # what the metric is measured on
    calib: list  # a few training batches for calibration
    example: object  # one batch of inputs (tensor or dict) for tracing and export
    labeled: bool
    batch_size: int


def build_data(spec: DataSpec, model_spec: ModelSpec, seed: int) -> Data:
    if spec.digits is not None:
        from slimkit.data.digits import digits_tensors, resized

        d = spec.digits
        train, val = (resized(ds, d.size, d.channels) for ds in digits_tensors(d.split_seed))
    elif spec.image_folder is not None:
        from slimkit.data.images import image_folder

        train, val = image_folder(spec.image_folder, seed)
    elif spec.text_lines is not None:
        from slimkit.data.lines import text_lines

        train, val = text_lines(spec.text_lines, model_spec.hf, seed)
    else:
        loaders = import_object(spec.factory, "data.factory")(**spec.kwargs)
        if not isinstance(loaders, tuple | list) or len(loaders) != 2:
            raise RecipeError(f"data.factory: {spec.factory} must return (train_loader, "
                              f"val_loader), not {type(loaders).__name__}")
        train, val = (getattr(ld, "dataset", ld) for ld in loaders)
    for name, ds in (("training", train), ("validation", val)):
        if len(ds) == 0:
            raise RecipeError(f"data: the {name} set is empty; the pipeline needs samples to "
                              "fine-tune, calibrate and measure the metric")
    loader = DataLoader(train, batch_size=spec.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    calib = [b for _, b in zip(range(spec.calib_batches), loader, strict=False)]
    first = calib[0]
    example = first[0] if isinstance(first, tuple | list) else first
    labeled = isinstance(first, tuple | list) and len(first) >= 2
    return Data(train, DataLoader(val, batch_size=spec.eval_batch_size), calib, example,
                labeled, spec.batch_size)


# ---- metric ---------------------------------------------------------------------------------
Metric = Callable[[nn.Module], float]


def build_metric(spec: EvalSpec, data: Data, original: nn.Module) -> tuple[Metric, str]:
    """(model → value, higher is better; the unit shown in reports)."""
    if spec.metric == "top1":
        if not data.labeled:
            raise RecipeError("eval.metric=top1 needs labelled data; use metric: cosine (vs "
                              "the original model) for unlabelled text")
        return _checked(lambda m: top1(m, data.val), "top1"), "% top-1"
    if spec.metric == "cosine":
        ref = outputs(original, data.val)
        return _checked(lambda m: cosine(outputs(m, data.val), ref), "cosine"), "cosine"
    fn = import_object(spec.metric, "eval.metric")
    return _checked(lambda m: float(fn(m, data.val)), spec.metric), spec.metric


def _checked(fn: Metric, name: str) -> Metric:
    def metric(model: nn.Module) -> float:
        v = fn(model)
        if not isinstance(v, float | int) or not math.isfinite(v):
            raise RecipeError(f"eval.metric {name} returned {v!r}: the metric must be a finite "
                              "number (higher is better)")
        return float(v)
    return metric


@torch.no_grad()
def top1(model: nn.Module, loader) -> float:
    model.eval()
    correct = total = 0
    for x, y, *_ in loader:
        correct += int((call_model(model, x).argmax(-1) == y).sum())
        total += len(y)
    return 100.0 * correct / total


@torch.no_grad()
def outputs(model: nn.Module, loader) -> torch.Tensor:
    model.eval()
    outs = [call_model(model, b).float() for b in loader]  # a tensor, dict or (x, y, …)
    return torch.cat([o.reshape(o.shape[0], -1) for o in outs])


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean per-sample cosine similarity of two (N, D) output sets."""
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1).mean())


__all__ = ["Data", "build_data", "build_metric", "build_model", "import_object", "top1"]
