"""Small recipes the pipeline tests run (seconds, not minutes)."""

import textwrap
from pathlib import Path

TINY = """
model:
  factory: slimkit.models:DigitsCNN
  kwargs: {width: 0.25}
  train: {epochs: 3, lr: 0.005}
data:
  digits: {}
  batch_size: 64
  calib_batches: 2
eval: {metric: top1}
budget: {max_drop: 3.0}
seed: 0
stages:
  - prune: {ratio: 0.3, finetune: {epochs: 1, lr: 0.001}}
  - distill: {epochs: 1, lr: 0.0005}
  - quantize: {preset: w8a8}
  - export: {runtimes: [ort]}
  - benchmark: {batch_sizes: [1], rounds: 1, runs_per_round: 2, runtimes: [torch, ort], cap_s: 2}
"""


def write(tmp: Path, text: str = TINY, name: str = "tiny.yaml", **replace) -> Path:
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    p = tmp / name
    p.write_text(textwrap.dedent(text))
    return p
