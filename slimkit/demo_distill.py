"""The demo's distillation step: does the fp32 model, as a teacher, make a smaller or
lower-precision student better? Means over 5 seeds, on the same real digits split.

One test image is 0.22 points here, so single runs differ by noise: 3 seeds could flip the
sign, 5 did not. T=2, α=0.5 was the setting that helped with each of two fp32 teachers
(99.56% and 99.78%) in a small grid (T ∈ {1, 2, 4}, α ∈ {0.5, 0.9}), not a per-run pick."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from slimkit.data.digits import digits_tensors
from slimkit.distill import Distiller
from slimkit.models import DigitsCNN
from slimkit.quant import QuantConfig, convert, prepare_qat
from slimkit.train import TrainConfig, Trainer, evaluate

SEEDS = (0, 1, 2, 3, 4)
KD = {"temperature": 2.0, "alpha": 0.5}
STUDENT = {"width": 0.5, "epochs": 20, "lr": 3e-3}
QAT = {"epochs": 8, "lr": 5e-4, "freeze_bn_after": 200, "freeze_observers_after": 250}


@dataclass
class DistillRow:
    experiment: str
    mean: float
    accuracies: list[float]


def _student(seed: int, teacher: nn.Module | None, train, test) -> float:
    torch.manual_seed(seed)
    model = DigitsCNN(width=STUDENT["width"])
    cfg = TrainConfig(epochs=STUDENT["epochs"], lr=STUDENT["lr"], seed=seed, progress=False)
    kd = {} if teacher is None else {"loss_fn": Distiller(teacher, **KD)}
    t = Trainer(model, cfg, train, test, **kd)
    t.fit()
    return t.evaluate()


def _w4a4(seed: int, fp32: nn.Module, use_kd: bool, train, test) -> float:
    torch.manual_seed(seed)
    cfg = QuantConfig.w4a4().with_qat(freeze_bn_after=QAT["freeze_bn_after"],
                                      freeze_observers_after=QAT["freeze_observers_after"])
    example = torch.stack([train[i][0] for i in range(64)])  # (64, 1, 8, 8)
    qat = prepare_qat(fp32, cfg, example)
    kd = {"loss_fn": Distiller(fp32, **KD)} if use_kd else {}
    t = Trainer(qat, TrainConfig(epochs=QAT["epochs"], lr=QAT["lr"], seed=seed, progress=False),
                train, test, **kd)
    t.fit()
    # the deployable model, BN folded and packed
    return evaluate(convert(qat), DataLoader(test, batch_size=256))


def run_distill(fp32: nn.Module) -> list[DistillRow]:
    train, test = digits_tensors()
    runs = {
        "half-width student, no KD": lambda s: _student(s, None, train, test),
        "half-width student, KD from fp32": lambda s: _student(s, fp32, train, test),
        "w4a4 QAT, no KD": lambda s: _w4a4(s, fp32, False, train, test),
        "w4a4 QAT + KD from fp32": lambda s: _w4a4(s, fp32, True, train, test),
    }
    rows = []
    for name, run in runs.items():
        accs = [run(s) for s in SEEDS]
        rows.append(DistillRow(name, statistics.mean(accs), accs))
    return rows


def format_distill(rows: list[DistillRow]) -> str:
    lines = [f"{'distillation (5 seeds)':<36}{'mean':>8}   per seed", "-" * 78]
    for r in rows:
        seeds = " / ".join(f"{a:.2f}" for a in r.accuracies)
        lines.append(f"{r.experiment:<36}{r.mean:>7.2f}%   {seeds}")
    return "\n".join(lines)
