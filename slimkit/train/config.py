"""TrainConfig: every knob of the training loop in one typed, validated place (slimkit.config).

`Schedule` is the part a recipe sets wherever it trains (the source model, fine-tuning, QAT,
distillation): those sections extend it, so epochs, lr, optimizer and schedule are declared
once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from slimkit.config import Config

PRECISIONS = ("fp32", "bf16", "fp16")


class Schedule(Config):
    """How long and how fast to train."""

    epochs: int = Field(10, ge=1)
    """Passes over the training data."""
    lr: float = Field(1e-3, gt=0)
    """Peak learning rate."""
    batch_size: int = Field(64, ge=1)
    """Samples per optimizer step (split across DDP ranks)."""
    optimizer: Literal["adamw", "sgd"] = "adamw"
    """adamw, or sgd with momentum 0.9."""
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    """The learning-rate schedule over all steps."""
    weight_decay: float = Field(1e-4, ge=0)
    """Decoupled weight decay (adamw) / L2 (sgd)."""


class TrainConfig(Schedule):
    """The Trainer's config: a Schedule, plus accumulation, precision and checkpoints."""

    grad_accum: int = Field(1, ge=1)
    """Micro-batches per optimizer step."""
    grad_clip: float | None = Field(None, gt=0)
    """Max global gradient norm (None: no clipping)."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """bf16: autocast; fp16: autocast + GradScaler (CUDA; slow on CPU)."""
    seed: int = 0
    """Seeds the model's initialisation and the data order."""
    parallel: Literal["ddp", "fsdp"] = "ddp"
    """Under torchrun: ddp (every rank holds the whole model, gradients and optimizer state)
    or fsdp (FSDP2: each rank holds 1/world of them; a model too large for one worker;
    sharded checkpoints). Ignored in one process."""
    recompute: bool = False
    """Activation checkpointing: each child module's forward runs again in its backward
    instead of keeping its activations (and QAT's fake-quantized weights): less memory, about
    one more forward per step."""
    checkpoint_dir: Path | None = None
    """Where checkpoints go (resume=True reads the latest)."""
    checkpoint_every: int = Field(0, ge=0)
    """Optimizer steps between checkpoints; 0: only at the end."""
    checkpoint_seconds: float = Field(0.0, ge=0)
    """Or by the clock: at most this much training is lost to a kill, whatever a step costs;
    0: off."""
    log_every: int = Field(20, ge=0)
    """Optimizer steps between log lines."""
    eval_every_epoch: bool = False
    """Top-1 on eval_data after each epoch: into the history and the bar."""
    progress: bool = True
    """A progress bar on a terminal."""

    @field_validator("checkpoint_dir", mode="before")
    @classmethod
    def _path(cls, v):
        if v is not None and not isinstance(v, str | os.PathLike):
            raise ValueError(f"checkpoint_dir={v!r} must be a path (str or os.PathLike)")
        return v

    @model_validator(mode="after")
    def _checkpoints(self):
        if self.checkpoint_every and self.checkpoint_dir is None:
            raise ValueError("checkpoint_every needs checkpoint_dir")
        if self.checkpoint_seconds and self.checkpoint_dir is None:
            raise ValueError("checkpoint_seconds needs checkpoint_dir")
        return self


__all__ = ["PRECISIONS", "Schedule", "TrainConfig"]
