"""TrainConfig: every knob of the training loop in one typed, validated place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from slimkit.errors import ConfigError, check_choice

PRECISIONS = ("fp32", "bf16", "fp16")
SCHEDULES = ("onecycle", "cosine", "constant")
OPTIMIZERS = ("adamw", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64  # global batch: split across DDP ranks
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    schedule: str = "onecycle"
    grad_accum: int = 1  # micro-batches per optimizer step
    grad_clip: float | None = None  # max global grad norm
    precision: str = "fp32"  # bf16: autocast; fp16: autocast + GradScaler (CUDA; slow on CPU)
    seed: int = 0
    checkpoint_dir: str | os.PathLike | None = None  # stored as a Path
    checkpoint_every: int = 0  # optimizer steps; 0: only at the end
    # or by the clock: at most this much training is lost to a kill, whatever a step costs
    # (a small model's steps take milliseconds, a large one's seconds); 0: off
    checkpoint_seconds: float = 0.0
    log_every: int = 20
    eval_every_epoch: bool = False  # top-1 on eval_data after each epoch: history + bar
    progress: bool = True

    def __post_init__(self) -> None:
        check_choice("TrainConfig.precision", self.precision, PRECISIONS)
        check_choice("TrainConfig.schedule", self.schedule, SCHEDULES)
        check_choice("TrainConfig.optimizer", self.optimizer, OPTIMIZERS)
        for name in ("epochs", "batch_size", "grad_accum"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name}={getattr(self, name)!r} must be an int ≥ 1")
        if self.lr <= 0:
            raise ConfigError(f"TrainConfig.lr={self.lr} must be > 0")
        if self.checkpoint_dir is not None:
            if not isinstance(self.checkpoint_dir, str | os.PathLike):
                raise ConfigError(f"TrainConfig.checkpoint_dir={self.checkpoint_dir!r} must be "
                                  "a path (str or os.PathLike)")
            object.__setattr__(self, "checkpoint_dir", Path(self.checkpoint_dir))
        if self.checkpoint_every and self.checkpoint_dir is None:
            raise ConfigError("TrainConfig.checkpoint_every needs checkpoint_dir")
        if not isinstance(self.checkpoint_seconds, int | float) or self.checkpoint_seconds < 0:
            raise ConfigError(f"TrainConfig.checkpoint_seconds={self.checkpoint_seconds!r} must "
                              "be a number ≥ 0")
        if self.checkpoint_seconds and self.checkpoint_dir is None:
            raise ConfigError("TrainConfig.checkpoint_seconds needs checkpoint_dir")
