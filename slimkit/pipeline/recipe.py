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

from pydantic import BaseModel, ConfigDict, Field, model_validator

from slimkit.errors import SlimkitError


class RecipeError(SlimkitError):
    """The recipe is invalid: the message names the field path and the allowed values."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- model ----------------------------------------------------------------------------------
class TrainSpec(Strict):
    """Train the source model first (examples that start from scratch)."""

    epochs: int = Field(10, ge=1)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    weight_decay: float = Field(1e-4, ge=0)


class ModelSpec(Strict):
    factory: str | None = Field(None, pattern=r"^[\w.]+:[\w.]+$")
    kwargs: dict[str, Any] = {}
    weights: str | None = None  # .safetensors, or .pt read with weights_only=True
    torchvision: str | None = None
    hf: str | None = None  # a local Hugging Face directory (a sentence encoder)
    train: TrainSpec | None = None
    input_shape: list[int] | None = None  # per-sample shape when the data cannot tell

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
    split_seed: int = 0
    size: int = Field(8, ge=8)  # resized (bilinear) for networks that need a larger input
    channels: Literal[1, 3] = 1  # 3: the grey plane repeated, for RGB networks


class ImageFolderData(Strict):
    path: str
    size: int = Field(32, ge=4)
    val_fraction: float = Field(0.2, gt=0, lt=1)
    mean: list[float] = [0.5, 0.5, 0.5]
    std: list[float] = [0.25, 0.25, 0.25]


class TextLinesData(Strict):
    path: str
    val_path: str | None = None  # held-out sentences; default: a val_fraction split of path
    tokenizer: str | None = None  # a model directory, or pkg.mod:fn returning one
    max_length: int = Field(128, ge=8)
    val_fraction: float = Field(0.25, gt=0, lt=1)


class DataSpec(Strict):
    digits: DigitsData | None = None
    image_folder: ImageFolderData | str | None = None
    text_lines: TextLinesData | str | None = None
    factory: str | None = Field(None, pattern=r"^[\w.]+:[\w.]+$")
    kwargs: dict[str, Any] = {}
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    calib_batches: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("digits", "image_folder", "text_lines", "factory")
                 if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of digits, image_folder, text_lines, factory "
                             f"(got {given or 'none'})")
        return self


# ---- task, eval and budget ------------------------------------------------------------------
TaskKind = Literal["classification", "multilabel", "regression", "embedding",
                   "token_classification", "custom"]


class TaskSpec(Strict):
    kind: TaskKind
    loss: str | None = None  # regression: mse | huber; custom: pkg.mod:fn(outputs, batch)
    ignore_index: int = -100  # token_classification: target positions left out


class EvalSpec(Strict):
    # default: the task's metric (top1, map, mse, cosine, token_top1); a function of your
    # own is fn(model, loader) -> float with higher_is_better stated
    metric: str | None = Field(
        None, pattern=r"^(top1|token_top1|map|f1|mse|mae|r2|cosine|[\w.]+:[\w.]+)$")
    higher_is_better: bool | None = None

    @model_validator(mode="after")
    def _direction(self):
        if self.metric and ":" in self.metric and self.higher_is_better is None:
            raise ValueError(f"metric {self.metric!r} is a function of your own: state "
                             "higher_is_better (true for an accuracy, false for an error)")
        return self


class Budget(Strict):
    # in the metric's units (top-1: points; MSE: how much it may rise), judged against the
    # original model's metric
    max_drop: float = Field(1.0, ge=0)
    # what one stage may lose, from the worse of the original's and the previous stage's
    # metric (a stage that improved never makes the next one's honest result look like a loss)
    per_stage: float | None = Field(None, ge=0)


class Recipe(Strict):
    model: ModelSpec
    data: DataSpec
    task: TaskKind | TaskSpec | None = None  # None: inferred from the data
    eval: EvalSpec = EvalSpec()
    budget: Budget = Budget()
    seed: int = 0
    threads: int = Field(2, ge=1)
    stages: list[dict[str, Any]] = Field(min_length=1)

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
