"""Does knowledge distillation from the fp32 teacher help w4a4 QAT? Cross-validated.

On one split, a difference of one test image (0.22 points) decides the answer, and seeds do
not help: every seed starts from the same teacher, so they share its view of the test images.
This script repeats the comparison over several train/test splits of the real digits (a new
teacher per split), with several seeds each, so ~2,000 distinct test predictions stand behind
each mean, and reports paired differences (same split, same seed, same data subset).

Models: the full-width DigitsCNN (4-bit QAT alone already matches its fp32 teacher: nothing
left to recover) and a quarter-width one (8/16/32 channels, less redundancy: 4 bits cost it
accuracy). The teacher is always the student's own fp32 model. Two regimes: QAT on the whole
training split (1,347 images) and on 256 labelled images (slimkit's user brings "a little
data"). KD settings: T=4, α=0.9 (chosen on a validation split carved out of the training set,
never on test data) and T=2, α=0.5 (the demo's half-width-student setting).

usage: python benchmarks/distill_qat.py [--splits 5] [--seeds 3] [--widths 1.0 0.25]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

import slimkit as sk
from slimkit.data.digits import digits_tensors
from slimkit.distill import Distiller
from slimkit.latency.machine import machine_line
from slimkit.models import DigitsCNN
from slimkit.train import TrainConfig, Trainer, evaluate

KD = {"no KD": None, "KD T=4 α=0.9": {"temperature": 4.0, "alpha": 0.9},
      "KD T=2 α=0.5": {"temperature": 2.0, "alpha": 0.5}}
REGIMES = {"all 1,347 images": None, "256 images": 256}


QAT = {"epochs": 8, "lr": 5e-4}


def w4a4_qat(seed: int, fp32: torch.nn.Module, kd: dict | None, train, test) -> float:
    """Top-1 of `fp32` after w4a4 QAT on `train` — with KD from `fp32` when `kd` gives
    Distiller settings (temperature, alpha)."""
    torch.manual_seed(seed)
    example = torch.stack([train[i][0] for i in range(64)])  # (64, 1, 8, 8)
    qat = sk.prepare_qat(fp32, sk.QuantConfig.w4a4(), example)
    extra = {} if kd is None else {"loss_fn": Distiller(fp32, **kd)}
    Trainer(qat, TrainConfig(epochs=QAT["epochs"], lr=QAT["lr"], seed=seed, progress=False),
            train, **extra).fit()
    return evaluate(sk.convert(qat), DataLoader(test, batch_size=256))  # the deployable model


def teacher(train, width: float) -> torch.nn.Module:
    torch.manual_seed(0)
    m = DigitsCNN(width)
    Trainer(m, TrainConfig(epochs=20, lr=3e-3, seed=0, progress=False), train).fit()
    return m.eval()


def subset(train, n: int | None, seed: int):
    if n is None:
        return train
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(100 + seed))[:n]
    return TensorDataset(*(t[idx] for t in train.tensors))


def main() -> None:
    print(machine_line(2))  # where this ran: CPU, ISA, runtime versions
    ap = argparse.ArgumentParser()
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.25],
                    help="DigitsCNN widths (the fp32 teacher is the student's own fp32 model)")
    a = ap.parse_args()
    torch.set_num_threads(2)
    for width in a.widths:
        compare(width, a.splits, a.seeds)


def compare(width: float, splits: int, seeds: int) -> None:
    acc = {(r, k): [] for r in REGIMES for k in KD}
    teachers, t0 = [], time.perf_counter()
    for split in range(splits):
        train, test = digits_tensors(split)
        fp32 = teacher(train, width)
        teachers.append(evaluate(fp32, DataLoader(test, batch_size=256)))
        for seed in range(seeds):
            for regime, n in REGIMES.items():
                data = subset(train, n, seed)
                for name, kd in KD.items():
                    acc[regime, name].append(w4a4_qat(seed, fp32, kd, data, test))
        print(f"width {width} split {split} done, {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"\nw4a4 QAT of DigitsCNN(width={width}), {splits} train/test splits × {seeds} seeds = "
          f"{splits * seeds} runs per row, 450 test images per split; "
          f"fp32 teachers {statistics.mean(teachers):.2f}%")
    print(f"{'QAT data':<18}{'loss':<15}{'mean top-1':>11}{'vs no KD':>10}{'wins/ties/losses':>18}")
    for regime in REGIMES:
        base = acc[regime, "no KD"]
        for name in KD:
            v = acc[regime, name]
            d = [x - b for x, b in zip(v, base, strict=True)]
            wtl = f"{sum(x > 1e-9 for x in d)}/{sum(abs(x) <= 1e-9 for x in d)}/" \
                  f"{sum(x < -1e-9 for x in d)}"
            delta = "" if name == "no KD" else f"{statistics.mean(d):+.2f}"
            print(f"{regime:<18}{name:<15}{statistics.mean(v):>10.2f}%{delta:>10}"
                  f"{'' if name == 'no KD' else wtl:>18}")
    print(flush=True)


if __name__ == "__main__":
    main()
