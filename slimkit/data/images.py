"""A class-per-folder image set (PATH/<class>/*.png|jpg), read with Pillow into memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from slimkit.errors import ConfigError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def image_folder(path, size: int = 32, val_fraction: float = 0.2,
                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                 seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """(train, val): images resized to size×size, normalised; classes sorted by folder name;
    a stratified split with `val_fraction` of each class held out (seeded)."""
    from PIL import Image  # Pillow comes with matplotlib; imported when a folder is read

    root = Path(path)
    if not root.is_dir():
        raise ConfigError(f"data.image_folder: {root} is not a directory")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise ConfigError(f"data.image_folder: {root} needs one sub-folder per class "
                          f"(found {classes or 'none'})")
    mean = torch.tensor(mean).reshape(-1, 1, 1)
    std = torch.tensor(std).reshape(-1, 1, 1)
    g = np.random.default_rng(seed)
    parts = {"train": ([], []), "val": ([], [])}
    for label, name in enumerate(classes):
        files = sorted(f for f in (root / name).iterdir() if f.suffix.lower() in SUFFIXES)
        order = g.permutation(len(files))
        n_val = max(1, int(round(val_fraction * len(files)))) if len(files) > 1 else 0
        for rank, i in enumerate(order):
            with Image.open(files[i]) as im:
                arr = np.asarray(im.convert("RGB").resize((size, size)), np.float32)
            x = (torch.from_numpy(arr).permute(2, 0, 1) / 255.0 - mean) / std  # (3, H, W)
            xs, ys = parts["val" if rank < n_val else "train"]
            xs.append(x)
            ys.append(label)
    out = []
    for key in ("train", "val"):
        xs, ys = parts[key]
        if not xs:
            raise ConfigError(f"data.image_folder: {root} has no {key} images")
        out.append(TensorDataset(torch.stack(xs), torch.tensor(ys)))
    return out[0], out[1]
