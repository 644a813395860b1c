"""The demo's pruning step: DigitsCNN with half of every prunable channel group removed (L1,
uniform, classifier outputs kept by the graph), fine-tuned briefly, then measured: accuracy,
params, MACs, and eager latency at batch 256 before and after (also BN-folded + NHWC)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from slimkit.bench import benchmark
from slimkit.data.digits import digits_tensors
from slimkit.deploy.layout import optimize_eager
from slimkit.pruning import PruneConfig, prune
from slimkit.record import record_of
from slimkit.train import TrainConfig, Trainer, evaluate

FINETUNE = {"epochs": 6, "lr": 1e-3, "seed": 0}
RATIO = 0.5


@dataclass
class PruneDemo:
    accuracy_before: float
    accuracy_pruned: float  # right after the cut, no training
    accuracy_finetuned: float
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    report: str
    latency: str
    latency_rows: list[dict]

    def to_dict(self) -> dict:
        return asdict(self)


def run_prune(fp32: nn.Module, progress: bool = False) -> PruneDemo:
    train, test = digits_tensors()
    x = torch.stack([test[i][0] for i in range(256)])  # (256, 1, 8, 8)
    small = prune(fp32, PruneConfig(ratio=RATIO), x[:1])
    report = record_of(small).report
    t = Trainer(small, TrainConfig(epochs=FINETUNE["epochs"], lr=FINETUNE["lr"],
                                   seed=FINETUNE["seed"], progress=progress), train, test)
    cut = t.evaluate()
    t.fit()
    before = evaluate(fp32, DataLoader(test, batch_size=256))
    res = benchmark({"fp32 eager": fp32, "pruned 50% eager": t.model,
                     "fp32 folded+NHWC": optimize_eager(fp32),
                     "pruned folded+NHWC": optimize_eager(t.model)}, x, rounds=6,
                    runs_per_round=3)
    return PruneDemo(before, cut, t.evaluate(), report.params_before, report.params_after,
                     report.macs_before, report.macs_after, str(report), str(res),
                     [asdict(r) for r in res.rows])


def format_prune(p: PruneDemo) -> str:
    return (f"pruning: 50% of every channel group (L1), {FINETUNE['epochs']} epochs fine-tune\n"
            f"  params {p.params_before:,} → {p.params_after:,} "
            f"({p.params_before / p.params_after:.1f}× fewer), MACs {p.macs_before:,} → "
            f"{p.macs_after:,} ({p.macs_before / p.macs_after:.1f}× fewer)\n"
            f"  accuracy {p.accuracy_before:.2f}% → {p.accuracy_pruned:.2f}% cut → "
            f"{p.accuracy_finetuned:.2f}% fine-tuned "
            f"(Δ {p.accuracy_finetuned - p.accuracy_before:+.2f} pts)\n{p.latency}")
