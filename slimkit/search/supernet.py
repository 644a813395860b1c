"""One-shot weight-sharing supernet for the digits space: every candidate is a sub-network of
one set of weights, so scoring one costs a BN recalibration and an evaluation, not a training.

- Elastic depth: a stage runs its first d blocks. Elastic width: a conv uses the first c_out
  filters and as many input channels as it receives. Elastic kernel: a k×k kernel is the centre
  of the 5×5 one (as in BigNAS; OFA adds a learned transform).
- Sandwich rule (Yu & Huang 2019): each step trains the largest, the smallest and a few random
  sub-networks on the same batch; with distill=True the others learn the largest one's soft
  predictions (in-place distillation), the largest learns the labels.
- Batch-norm statistics are shared buffers, so they are re-estimated for each sampled
  sub-network before it is scored.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from slimkit.atomic import atomic_path
from slimkit.search.config import SearchConfig, SupernetConfig
from slimkit.search.evaluators import SearchData, recalibrate_bn, val_scores
from slimkit.search.space import SearchError, Space
from slimkit.search.spaces import DEPTHS, DIGITS_WIDTHS, KERNELS, digits_arch
from slimkit.train import TrainConfig, Trainer

Arch = tuple[list[int], list[int], list[int]]  # (depths, widths, kernels) per stage


class ElasticConvBN(nn.Module):
    """Conv (max c_out × max c_in × 5 × 5) + BN + ReLU whose active slice is set per call."""

    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, c_out: int, k: int) -> torch.Tensor:
        kmax = self.conv.kernel_size[0]
        lo = (kmax - k) // 2
        w = self.conv.weight[:c_out, :x.shape[1], lo:lo + k, lo:lo + k]  # (c_out, c_in, k, k)
        y = F.conv2d(x, w, padding=k // 2)
        bn = self.bn
        factor = 0.0
        if self.training:
            bn.num_batches_tracked += 1
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        y = F.batch_norm(y, bn.running_mean[:c_out], bn.running_var[:c_out], bn.weight[:c_out],
                         bn.bias[:c_out], self.training, factor, bn.eps)
        return F.relu(y)


class DigitsSupernet(nn.Module):
    """The digits space's largest network; forward(x, arch) runs one sub-network."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stages = nn.ModuleList()
        c_in = 1
        for widths in DIGITS_WIDTHS:
            c = max(widths)
            self.stages.append(nn.ModuleList(
                ElasticConvBN(c_in if j == 0 else c, c, max(KERNELS)) for j in range(max(DEPTHS))))
            c_in = c
        self.fc = nn.Linear(c_in * 4, num_classes)

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:  # (N, 1, 8, 8) → (N, 10)
        depths, widths, kernels = arch
        for s, blocks in enumerate(self.stages):
            for j in range(depths[s]):
                x = blocks[j](x, widths[s], kernels[s])
            if s > 0:
                x = F.max_pool2d(x, 2)
        x = torch.flatten(x, 1)  # (N, c3 · 4): channel-major, so the first c3 channels lead
        return F.linear(x, self.fc.weight[:, :x.shape[1]], self.fc.bias)


LARGEST: Arch = ([max(DEPTHS)] * 3, [max(w) for w in DIGITS_WIDTHS], [max(KERNELS)] * 3)
SMALLEST: Arch = ([min(DEPTHS)] * 3, [min(w) for w in DIGITS_WIDTHS], [min(KERNELS)] * 3)


class _Active(nn.Module):
    """The supernet with one sub-network fixed: an ordinary module for recalibration / eval."""

    def __init__(self, net: DigitsSupernet, arch: Arch) -> None:
        super().__init__()
        self.net, self.arch = net, arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, self.arch)


class SandwichLoss:
    """Trainer loss: the largest sub-network on the labels, then the smallest and `n_random`
    random ones (on the largest's soft targets when distilling); one backward for all."""

    def __init__(self, space: Space, cfg: SupernetConfig, seed: int) -> None:
        self.space, self.cfg, self.rng = space, cfg, random.Random(seed)

    def __call__(self, net: DigitsSupernet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = net(x, LARGEST)
        loss = F.cross_entropy(logits, y)
        soft = F.softmax(logits.detach(), dim=1)
        others = [SMALLEST] + [digits_arch(self.space.decode(self.space.random(self.rng)))
                               for _ in range(self.cfg.random_subnets)]
        for arch in others:
            out = net(x, arch)
            loss = loss + (F.cross_entropy(out, soft) if self.cfg.distill
                           else F.cross_entropy(out, y))
        return loss


def train_supernet(space: Space, cfg: SupernetConfig, data: SearchData, seed: int = 0,
                   cache: Path | None = None) -> DigitsSupernet:
    """Train (or load from `cache`, written atomically) the digits supernet."""
    torch.manual_seed(seed)
    net = DigitsSupernet()
    if cache is not None and cache.exists():
        net.load_state_dict(torch.load(cache, weights_only=True))
        return net.eval()
    tc = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed,
                     progress=False, log_every=0)
    with Trainer(net, tc, data.train, loss_fn=SandwichLoss(space, cfg, seed)) as t:
        t.fit()
    if cache is not None:
        with atomic_path(cache) as tmp:
            torch.save(net.state_dict(), tmp)
    return net.eval()


class SupernetEvaluator:
    """Scores a digits-space candidate with the supernet's shared weights."""

    def __init__(self, net: DigitsSupernet, cfg: SupernetConfig, data: SearchData,
                 seed: int = 0) -> None:
        self.net, self.cfg, self.data, self.seed = net, cfg, data, seed

    @classmethod
    def for_space(cls, space: Space, config: SearchConfig, data: SearchData):
        if space.name != "digits":
            raise SearchError(f"evaluator='supernet' covers the 'digits' space; space "
                              f"'{space.name}' needs evaluator='proxy'")
        cache = None
        if config.run_dir is not None:
            key = hashlib.sha1(json.dumps([config.supernet.__dict__, config.seed, config.data],
                                          sort_keys=True).encode()).hexdigest()[:10]
            cache = config.run_dir / f"supernet-{key}.pt"
        net = train_supernet(space, config.supernet, data, config.seed, cache)
        return cls(net, config.supernet, data, config.seed)

    def __call__(self, space: Space, encoding, model: nn.Module | None = None) -> dict:
        sub = _Active(self.net, digits_arch(space.decode(encoding)))
        recalibrate_bn(sub, self.data.train, self.cfg.calib_batches, self.cfg.batch_size,
                       self.seed)
        return val_scores(sub, self.data.val)
