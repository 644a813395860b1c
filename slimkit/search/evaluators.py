"""Evaluators score a candidate: a short proxy training here, the one-shot supernet in
supernet.py. Both return {'accuracy': top-1 % on the search's validation split, 'loss': mean
cross-entropy there} — never the test split, which only the final retraining reads. The loss
is the finer metric to search on: 270 validation digits make accuracy move in steps of
0.37 points, so near the top many candidates tie and "best of N" becomes a lottery.

An evaluator is any callable (space, encoding, model) → {'accuracy': float, ...}; `model` is
the candidate the runner built (seeded per encoding) to cost it before training.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from slimkit.data.digits import digits_tensors, resized
from slimkit.errors import check_choice
from slimkit.search.config import DATASETS, ProxyConfig
from slimkit.search.space import Space
from slimkit.train import TrainConfig, Trainer

VAL_FRACTION = 0.2  # of the training split, held out to score candidates


@dataclass(frozen=True)
class SearchData:
    """train / val score candidates during the search; full_train / test retrain and report
    the chosen ones."""

    train: Dataset
    val: Dataset
    full_train: Dataset
    test: Dataset


def search_data(name: str = "digits") -> SearchData:
    """A registered data set split for search (fixed split: the same in every process)."""
    from sklearn.model_selection import train_test_split


    check_choice("SearchConfig.data", name, DATASETS)
    full, test = digits_tensors()
    if name == "digits32":
        # 3×32×32: the MobileNetV2- and ResNet-like spaces need more than an 8×8 input
        full, test = resized(full, 32, 3), resized(test, 32, 3)
    y = full.tensors[1]
    tr, va = train_test_split(range(len(y)), test_size=VAL_FRACTION, random_state=0,
                              stratify=y.numpy())
    return SearchData(Subset(full, tr), Subset(full, va), full, test)


def candidate_seed(seed: int, encoding: Sequence[int]) -> int:
    """The seed a candidate is built and trained with: a function of the encoding, so the
    same candidate scores the same in any worker, trial or resumed run."""
    h = hashlib.sha1(f"{seed}:{tuple(encoding)}".encode()).digest()
    return int.from_bytes(h[:4], "little")


def fraction(ds: Dataset, frac: float, seed: int) -> Dataset:
    if frac >= 1.0:
        return ds
    n = max(1, int(round(len(ds) * frac)))
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n]
    return Subset(ds, idx.tolist())


def accuracy(model: nn.Module, data: Dataset, batch_size: int = 512) -> float:
    return val_scores(model, data, batch_size)["accuracy"]


@torch.no_grad()
def val_scores(model: nn.Module, data: Dataset, batch_size: int = 512) -> dict[str, float]:
    """{'accuracy': top-1 %, 'loss': mean cross-entropy} of `model` on `data`."""
    model.eval()
    correct, loss = 0, 0.0
    for x, y in DataLoader(data, batch_size=batch_size):
        out = model(x)
        correct += int((out.argmax(1) == y).sum())
        loss += float(F.cross_entropy(out, y, reduction="sum"))
    return {"accuracy": 100.0 * correct / len(data), "loss": loss / len(data)}


@torch.no_grad()
def recalibrate_bn(model: nn.Module, data: Dataset, batches: int, batch_size: int = 64,
                   seed: int = 0) -> None:
    """Re-estimate every BatchNorm's running statistics on `batches` batches (a cumulative
    average, not a moving one): a sub-network or a pruned model sees other activations than
    the statistics it inherited."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    loader = DataLoader(data, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    for i, (x, _) in enumerate(loader):
        if i >= batches:
            break
        model(x)
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    model.eval()


class ProxyEvaluator:
    """Train the candidate for a few epochs on a fraction of the search's training split
    (with slimkit's Trainer), then top-1 on the validation split."""

    def __init__(self, config: ProxyConfig, data: SearchData, seed: int = 0) -> None:
        self.cfg, self.data, self.seed = config, data, seed

    def __call__(self, space: Space, encoding: Sequence[int], model: nn.Module) -> dict:
        s = candidate_seed(self.seed, encoding)
        train = fraction(self.data.train, self.cfg.data_fraction, self.seed)
        if self.cfg.epochs == 0:
            recalibrate_bn(model, train, batches=8, seed=s)
        else:
            cfg = TrainConfig(epochs=self.cfg.epochs, batch_size=self.cfg.batch_size,
                              lr=self.cfg.lr, seed=s % 2**31, progress=False, log_every=0)
            with Trainer(model, cfg, train) as t:
                t.fit()
        return val_scores(model, self.data.val)


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's τ-b between two score lists (ties handled); 1 = same order, −1 = reversed."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"kendall_tau needs two lists of the same length ≥ 2, got "
                         f"{len(a)} and {len(b)}")
    conc = disc = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                conc += 1
            else:
                disc += 1
    denom = ((conc + disc + ties_a) * (conc + disc + ties_b)) ** 0.5
    return (conc - disc) / denom if denom else 0.0
