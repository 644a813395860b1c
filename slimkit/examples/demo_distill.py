"""The demo's distillation step: does the fp32 model, as a teacher, make a smaller or
lower-precision student better? Means over 5 seeds, on the same real digits split.

One test image is 0.22 points here, and all seeds share one teacher and one test set, so a
difference of an image or two is noise — for w4a4 QAT the sign flips from split to split.
`benchmarks/distill_qat.py` answers that question cross-validated (several splits, a teacher
each, paired runs). Settings were picked on a validation split carved out of the training data,
never on the test images: T=2, α=0.5 for the half-width student (grid T ∈ {1, 2, 4},
α ∈ {0.5, 0.9}), T=4, α=0.9 for QAT (grid T ∈ {1, 2, 4}, α ∈ {0.5, 0.9, 1}, four QAT budgets,
three data sizes).
"""

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
STUDENT_KD = {"temperature": 2.0, "alpha": 0.5}
QAT_KD = {"temperature": 4.0, "alpha": 0.9}
STUDENT = {"width": 0.5, "epochs": 20, "lr": 3e-3}
QAT = {"epochs": 8, "lr": 5e-4}


@dataclass
class DistillRow:
    experiment: str
    mean: float
    accuracies: list[float]


def _student(seed: int, teacher: nn.Module | None, train, test) -> float:
    torch.manual_seed(seed)
    model = DigitsCNN(width=STUDENT["width"])
    cfg = TrainConfig(epochs=STUDENT["epochs"], lr=STUDENT["lr"], seed=seed, progress=False)
    kd = {} if teacher is None else {"loss_fn": Distiller(teacher, **STUDENT_KD)}
    t = Trainer(model, cfg, train, test, **kd)
    t.fit()
    return t.evaluate()


def w4a4_qat(seed: int, fp32: nn.Module, kd: dict | None, train, test) -> float:
    """Top-1 of `fp32` after w4a4 QAT on `train` — with KD from `fp32` when `kd` gives
    Distiller settings (temperature, alpha). Also used by benchmarks/distill_qat.py."""
    torch.manual_seed(seed)
    example = torch.stack([train[i][0] for i in range(64)])  # (64, 1, 8, 8)
    qat = prepare_qat(fp32, QuantConfig.w4a4(), example)
    extra = {} if kd is None else {"loss_fn": Distiller(fp32, **kd)}
    Trainer(qat, TrainConfig(epochs=QAT["epochs"], lr=QAT["lr"], seed=seed, progress=False),
            train, **extra).fit()
    # the deployable model, BN folded and packed
    return evaluate(convert(qat), DataLoader(test, batch_size=256))


def run_distill(fp32: nn.Module) -> list[DistillRow]:
    train, test = digits_tensors()
    runs = {
        "half-width student, no KD": lambda s: _student(s, None, train, test),
        "half-width student, KD from fp32": lambda s: _student(s, fp32, train, test),
        "w4a4 QAT, no KD": lambda s: w4a4_qat(s, fp32, None, train, test),
        "w4a4 QAT + KD from fp32": lambda s: w4a4_qat(s, fp32, QAT_KD, train, test),
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
