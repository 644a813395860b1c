"""The recipe: YAML read with yaml.safe_load, validated with pydantic v2 into typed sections.

    model:   {factory: pkg.mod:fn, kwargs: {...}, weights: w.safetensors, train: {...}}
             | {torchvision: resnet18} | {hf: ./minilm-dir}
    data:    {digits: {}} | {image_folder: PATH} | {text_lines: PATH} | {factory: pkg.mod:fn}
    task:    classification | multilabel | regression | embedding | token_classification
             | {kind: custom, loss: pkg.mod:fn} — omitted: inferred from the data (slimkit.task)
    eval:    {metric: top1 | map | f1 | mse | mae | r2 | cosine | token_top1 | pkg.mod:fn,
              higher_is_better: …}  — default: the task's metric
    budget:  {max_drop: 1.0, per_stage: 0.5}
    stages:  [- prune: {...}, - distill: {...}, - quantize: {...}, - export: {...}, ...]

Every stage type is one entry of the stage registry (registry.py) with its own config model, so
a new technique becomes a recipe stage by registering there; load.py reads a file into these
models. Errors name the field path and what is allowed; nothing is written before a recipe
validates.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from slimkit.config import Config
from slimkit.errors import SlimkitError
from slimkit.task import TaskKind, TaskSpec
from slimkit.train.config import Schedule


class RecipeError(SlimkitError):
    """The recipe is invalid: the message names the field path and the allowed values."""


Strict = Config  # every recipe section is a typed Config (slimkit.config)


# ---- model ----------------------------------------------------------------------------------
TrainSpec = Schedule  # model.train: train the source first (examples that start from scratch)


class ModelSpec(Strict):
    """The model to compress: exactly one of factory, torchvision, hf."""

    factory: str | None = Field(None, pattern=r"^[\w.]+:[\w.]+$")
    """'package.module:function' (or a class) that builds it, imported from the working
    directory or PYTHONPATH."""
    kwargs: dict[str, Any] = {}
    """Keyword arguments for the factory."""
    weights: str | None = None
    """Trained weights: a .safetensors file, or a .pt state dict (read with
    weights_only=True: no code is unpickled)."""
    torchvision: str | None = None
    """A torchvision model name (resnet18, mobilenet_v2, …), built without weights."""
    hf: str | None = None
    """A local Hugging Face model directory, as a sentence encoder (no hub download)."""
    train: TrainSpec | None = None
    """Train the source first (examples that start from scratch); the trained source is kept
    in the run directory."""
    input_shape: list[int] | None = None
    """The per-sample input shape, where the data cannot tell."""

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("factory", "torchvision", "hf") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of factory, torchvision, hf "
                             f"(got {given or 'none'})")
        if self.weights and not self.weights.endswith((".safetensors", ".pt", ".pth")):
            raise ValueError(f"weights={self.weights!r}: use a .safetensors or .pt file")
        return self


# ---- data -----------------------------------------------------------------------------------
class DigitsData(Strict):
    """scikit-learn's bundled digits: 1,797 real 8×8 images, 450 held out."""

    split_seed: int = 0
    """Seeds the stratified train / test split."""
    size: int = Field(8, ge=8)
    """Resized (bilinear) to size × size, for networks that need a larger input."""
    channels: Literal[1, 3] = 1
    """3: the grey plane repeated, for RGB networks."""


class ImageFolderData(Strict):
    """PATH/<class>/*.png|jpg, read into memory."""

    path: str
    """The folder: one sub-folder per class."""
    size: int = Field(32, ge=4)
    """Images resized to size × size."""
    val_fraction: float = Field(0.2, gt=0, lt=1)
    """Share of each class held out (seeded, stratified)."""
    mean: list[float] = [0.5, 0.5, 0.5]
    """Per-channel mean subtracted (after scaling to [0, 1])."""
    std: list[float] = [0.25, 0.25, 0.25]
    """Per-channel standard deviation divided by."""


class TextLinesData(Strict):
    """Unlabelled sentences, one per line, tokenized for the model (embedding task)."""

    path: str
    """The sentences."""
    val_path: str | None = None
    """Held-out sentences; default: a val_fraction split of path."""
    tokenizer: str | None = None
    """A model directory, or 'pkg.mod:fn' returning a tokenizer; default: model.hf."""
    max_length: int = Field(128, ge=8)
    """Tokens per sentence (padded / truncated)."""
    val_fraction: float = Field(0.25, gt=0, lt=1)
    """Share of path held out when val_path is not given."""


class DataSpec(Strict):
    """Where batches come from: exactly one of digits, image_folder, text_lines, factory.
    Batches follow the data contract: x, (x,), (x, y), ((x1, x2, …), y) or a dict."""

    digits: DigitsData | None = None
    """The bundled digits."""
    image_folder: ImageFolderData | str | None = None
    """A class-per-folder image set (a path, or the full section)."""
    text_lines: TextLinesData | str | None = None
    """Sentences for an encoder (a path, or the full section)."""
    factory: str | None = Field(None, pattern=r"^[\w.]+:[\w.]+$")
    """'pkg.mod:fn' returning (train_loader, val_loader); their datasets are used."""
    kwargs: dict[str, Any] = {}
    """Keyword arguments for the factory."""
    batch_size: int = Field(64, ge=1)
    """Training and calibration batch size."""
    eval_batch_size: int = Field(256, ge=1)
    """Batch size of the metric's evaluation."""
    calib_batches: int = Field(8, ge=1)
    """Training batches used to calibrate, rank importances and check the data."""

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("digits", "image_folder", "text_lines", "factory")
                 if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of digits, image_folder, text_lines, factory "
                             f"(got {given or 'none'})")
        return self


# ---- eval and budget ------------------------------------------------------------------------
class EvalSpec(Strict):
    """The metric every stage is judged by."""

    metric: str | None = Field(
        None, pattern=r"^(top1|token_top1|map|f1|mse|mae|r2|cosine|[\w.]+:[\w.]+)$")
    """Default: the task's (top1, map, mse, cosine, token_top1); or f1, mae, r2; or
    'pkg.mod:fn' — fn(model, loader) -> float, with higher_is_better stated."""
    higher_is_better: bool | None = None
    """The direction of a metric of your own (true for an accuracy, false for an error)."""

    @model_validator(mode="after")
    def _direction(self):
        if self.metric and ":" in self.metric and self.higher_is_better is None:
            raise ValueError(f"metric {self.metric!r} is a function of your own: state "
                             "higher_is_better (true for an accuracy, false for an error)")
        return self


class Budget(Strict):
    """What compression may cost, in the metric's units (top-1: points; MSE: how much it may
    rise)."""

    max_drop: float = Field(1.0, ge=0)
    """Overall, judged against the original model's metric."""
    per_stage: float | None = Field(None, ge=0)
    """What one stage may lose, from the worse of the original's and the previous stage's
    metric (default: max_drop); a stage's own `budget` overrides it."""


class Recipe(Strict):
    """A recipe file: the model, its data, the task, the metric, the budget, the stages."""

    model: ModelSpec
    """The model to compress."""
    data: DataSpec
    """Its data."""
    task: TaskKind | TaskSpec | None = None
    """classification | multilabel | regression | embedding | token_classification, or a
    section (custom needs one); omitted: inferred from the data, and `slimkit check` says
    why."""
    eval: EvalSpec = EvalSpec()
    """The metric."""
    budget: Budget = Budget()
    """The accuracy budget."""
    seed: int = 0
    """Seeds everything a run draws (initialisation, data order, per stage)."""
    threads: int = Field(2, ge=1)
    """Threads for torch and every runtime."""
    stages: list[dict[str, Any]] = Field(min_length=1)
    """In order; each one mapping `- kind: {fields}` (docs/recipes.md lists every kind)."""

    def identity(self) -> str:
        """What a run directory belongs to: the model, data and metric (not the stages)."""
        return _hash({"model": self.model.model_dump(), "data": self.data.model_dump(),
                      "eval": self.eval.model_dump(), "task": _dump(self.task)})

    def stage_key(self, i: int) -> str:
        """A stage's result is reused while this does not change: everything it depends on."""
        return _hash({"identity": self.identity(), "budget": self.budget.model_dump(),
                      "seed": self.seed, "stages": self.stages[: i + 1]})


def _dump(task) -> object:
    return task.model_dump() if isinstance(task, BaseModel) else task


def _hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
