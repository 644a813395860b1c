"""Checkpoints written atomically and read safely.

A checkpoint is one dict of tensors and plain Python values (torch.load(weights_only=True)
can read it). Files are `step-00001234.pt` in one directory; a new one is written to a temp
file and renamed, so a crash mid-write never touches the previous good checkpoint. Sharded
training (train/shard.py) writes directories `step-00001234/` the same way; both kinds are
listed here, the newest first to resume from.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import torch

from slimkit.atomic import atomic_path
from slimkit.errors import SlimkitError

_NAME = re.compile(r"^step-(\d{8})(\.pt)?$")


class CheckpointError(SlimkitError):
    """A checkpoint file is missing, truncated or not a slimkit checkpoint."""


def write(state: dict, directory: str | os.PathLike, step: int, keep: int = 2) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step-{step:08d}.pt"
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    prune(directory, keep)
    return path


def prune(directory: str | os.PathLike, keep: int = 2) -> None:
    """Delete all but the newest `keep` checkpoints (files or sharded directories)."""
    for old in list_checkpoints(directory)[:-keep]:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def is_sharded(path: str | os.PathLike) -> bool:
    return Path(path).is_dir()


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Checkpoint files in step order (oldest first)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.iterdir() if _NAME.search(p.name)),
                  key=lambda p: int(_NAME.search(p.name).group(1)))


def read(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — truncated zip, pickle errors, …: one clear message
        others = [p.name for p in list_checkpoints(path.parent) if p != path]
        hint = f"; earlier checkpoints: {others}" if others else ""
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}){hint}") from e
    if not isinstance(state, dict) or "step" not in state or "model" not in state:
        raise CheckpointError(f"{path} is not a slimkit training checkpoint")
    return state


def latest(directory: str | os.PathLike) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None
