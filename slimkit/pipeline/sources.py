"""What a recipe names, built: the model (factory, torchvision, a Hugging Face directory), the
data (digits, an image folder, text lines, a factory), the task (stated or inferred from the
data) and the metric (the task's, or a function of the user's)."""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from slimkit.batch import BatchError, call, check, split
from slimkit.data.digits import digits_tensors, resized
from slimkit.data.images import image_folder
from slimkit.data.lines import text_lines
from slimkit.errors import ConfigError
from slimkit.factory import import_attr
from slimkit.metrics import Metric, collect
from slimkit.pipeline.recipe import (
    DataSpec,
    ImageFolderData,
    ModelSpec,
    Recipe,
    RecipeError,
    TaskSpec,
    TextLinesData,
)
from slimkit.record import record_of
from slimkit.task import Task, infer


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
    """Load a .safetensors or .pt state dict strictly; every way it can fail is named."""
    if not path.is_file():
        raise RecipeError(f"model.weights: {path} does not exist")
    state = _read_state(path)
    problem = state_mismatch(model.state_dict(), state)
    if problem:
        raise RecipeError(f"model.weights: {path} does not fit {type(model).__name__}: "
                          f"{problem}")
    model.load_state_dict(state)


def _read_state(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise RecipeError(f"model.weights: {path} is not a readable safetensors file "
                              f"(truncated or corrupt: {e})") from None
    try:  # never unpickle code: tensors and plain containers only
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — unpickling raises many types; all mean "not weights"
        raise RecipeError(f"model.weights: {path} is not a PyTorch weights file that loads "
                          f"with weights_only=True ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise RecipeError(f"model.weights: {path} holds a {type(state).__name__}, not a state "
                          "dict (a mapping of names to tensors)")
    return state


def state_mismatch(expected: dict, given: dict, show: int = 5) -> str | None:
    """The first missing, unexpected and mis-shaped keys of `given` against `expected`."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shaped = [f"{k} {list(given[k].shape)} (model: {list(expected[k].shape)})"
              for k in expected if k in given and given[k].shape != expected[k].shape]
    parts = []
    for what, keys in (("missing", missing), ("unexpected", unexpected),
                       ("mis-shaped", shaped)):
        if keys:
            more = f" and {len(keys) - show} more" if len(keys) > show else ""
            parts.append(f"{len(keys)} {what}: {', '.join(keys[:show])}{more}")
    return "; ".join(parts) or None


# ---- data -----------------------------------------------------------------------------------
@dataclass
class Data:
    train: Dataset  # what the Trainer draws batches from
    val: DataLoader  # what the metric is measured on
    calib: list  # a few training batches for calibration
    example: object  # one batch's inputs (a tensor, tuple or dict) for tracing and export
    labeled: bool  # the batches carry a target
    batch_size: int


def build_data(spec: DataSpec, model_spec: ModelSpec, seed: int) -> Data:
    if spec.digits is not None:
        d = spec.digits
        train, val = (resized(ds, d.size, d.channels) for ds in digits_tensors(d.split_seed))
    elif spec.image_folder is not None:
        f = spec.image_folder
        f = ImageFolderData(path=f) if isinstance(f, str) else f
        train, val = image_folder(f.path, f.size, f.val_fraction, f.mean, f.std, seed)
    elif spec.text_lines is not None:
        t = spec.text_lines
        t = TextLinesData(path=t) if isinstance(t, str) else t
        train, val = text_lines(t.path, _tokenizer(t.tokenizer or model_spec.hf), t.max_length,
                                t.val_fraction, t.val_path, seed)
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
    val_loader = DataLoader(val, batch_size=spec.eval_batch_size)
    calib = [b for _, b in zip(range(spec.calib_batches), loader, strict=False)]
    try:  # the data contract (batch.py), checked on both sets before any work
        example, target = split(calib[0])
        _, val_target = split(next(iter(val_loader)))
    except BatchError as e:
        raise RecipeError(f"data: {e}") from None
    if (target is None) != (val_target is None):
        raise RecipeError("data: the training batches " + ("carry no" if target is None else
                          "carry a") + " target and the validation batches " +
                          ("do" if target is None else "do not") + "; give both sets alike")
    return Data(train, val_loader, calib, example, target is not None, spec.batch_size)


def _tokenizer(where: str | None):
    """A model directory as it is; 'pkg.mod:fn' (not a path) → the tokenizer fn returns."""
    if where is not None and ":" in where and not Path(where).exists():
        return import_object(where, "data.text_lines.tokenizer")()
    return where


# ---- task -----------------------------------------------------------------------------------
def build_task(recipe: Recipe, data: Data, model: nn.Module) -> Task:
    """The recipe's task, or the one the first batch makes unambiguous; refused (with the
    batch's structure and the targets' kind named) where the data does not fit it."""
    first = data.calib[0]
    if isinstance(recipe.task, TaskSpec) and recipe.task.loss and ":" in recipe.task.loss:
        import_object(recipe.task.loss, "task.loss")
    try:
        check(model, first, "data: the first training batch")
        inputs, target = split(first)
        with torch.no_grad():
            out = call(model.eval(), inputs)
        ev = recipe.eval
        if recipe.task is None:
            task = infer(out, target)
            if ev.metric is not None:
                task = replace(task, metric=ev.metric, higher_is_better=ev.higher_is_better)
        else:
            spec = (TaskSpec(kind=recipe.task) if isinstance(recipe.task, str)
                    else recipe.task)
            task = Task(spec.kind, spec.loss, ev.metric, ev.higher_is_better,
                        spec.ignore_index).because("stated in the recipe")
        task.check(out, target, "data")
        if task.labeled and data.labeled:
            probe_loss(task, model, inputs, target)
    except (ConfigError, BatchError) as e:
        raise RecipeError(f"{e}") from None
    return task


def probe_loss(task: Task, model: nn.Module, inputs, target) -> None:
    """The task's loss on one batch, before any work: it must be a finite number that
    depends on the model's parameters (a constant trains nothing)."""
    try:
        loss = task.loss_value(call(model.eval(), inputs), target, inputs)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 — a user's loss may raise anything; name it
        raise ConfigError(f"task {task.kind}: the loss ({task.loss_name}) fails on the first "
                          f"batch: {type(e).__name__}: {e}") from e
    where = f"task {task.kind}: the loss ({task.loss_name}) on the first batch"
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ConfigError(f"{where} is {type(loss).__name__}, not a scalar tensor")
    if not bool(torch.isfinite(loss)):
        raise ConfigError(f"{where} is {float(loss)}: not finite")
    if not loss.requires_grad:
        raise ConfigError(f"{where} does not depend on the model's parameters (a constant, or "
                          "computed from detached outputs): training would change nothing")


# ---- metric ---------------------------------------------------------------------------------
class RunMetric:
    """The recipe's metric on the validation data: model → a finite number, with its unit and
    direction (a budget's drop is a fall of an accuracy, a rise of an error)."""

    def __init__(self, metric: Metric, loader) -> None:
        self.metric, self.loader = metric, loader
        self.name, self.unit = metric.name, metric.unit
        self.higher_is_better = metric.higher_is_better

    def __call__(self, model: nn.Module) -> float:
        try:
            v = self.metric(model, self.loader)
        except (ValueError, TypeError, RuntimeError) as e:
            raise RecipeError(f"eval.metric {self.name} failed: {e}") from e
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            v = float(v)
        if not isinstance(v, float | int) or not math.isfinite(v):
            raise RecipeError(f"eval.metric {self.name} returned {v!r}: the metric must be a "
                              "finite number")
        return float(v)

    def drop(self, reference: float, value: float) -> float:
        return self.metric.drop(reference, value)

    def worse(self, a: float, b: float) -> float:
        return self.metric.worse(a, b)


def build_metric(task: Task, data: Data, original: nn.Module) -> RunMetric:
    reference = None
    if ":" in task.metric_name:
        import_object(task.metric_name, "eval.metric")  # a clear error, the user's path
    if task.metric_name == "cosine":
        reference, _ = collect(original, data.val)
    return RunMetric(task.metric_spec(reference), data.val)


__all__ = ["Data", "RunMetric", "build_data", "build_metric", "build_model", "build_task",
           "import_object", "state_mismatch"]
