"""Example data: a class-per-folder image set generated on the spot (no download), for the
image_folder recipe: three classes of noisy shapes (disc, bar, ring) in random colours.

    python -m slimkit.examples.images images/ [--per-class 40]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

CLASSES = ("disc", "bar", "ring")


def shape(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    cy, cx = rng.uniform(-0.15, 0.15, 2)
    r = np.hypot(yy - cy, xx - cx)
    if kind == "disc":
        mask = r < rng.uniform(0.18, 0.3)
    elif kind == "ring":
        mask = np.abs(r - rng.uniform(0.2, 0.3)) < 0.05
    else:
        angle = rng.uniform(0, np.pi)
        mask = np.abs((yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle)) < 0.07
    colour = rng.uniform(0.3, 1.0, 3)
    img = rng.normal(0.15, 0.08, (size, size, 3)) + mask[..., None] * colour
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def write_folder(root: str | Path, per_class: int = 40, size: int = 40, seed: int = 0) -> Path:
    from PIL import Image

    root, rng = Path(root), np.random.default_rng(seed)
    for kind in CLASSES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(shape(kind, size, rng)).save(root / kind / f"{i:03d}.png")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("root", type=Path)
    ap.add_argument("--per-class", type=int, default=40)
    a = ap.parse_args()
    print(write_folder(a.root, a.per_class))


if __name__ == "__main__":
    main()
