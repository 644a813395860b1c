"""Structured pruning to 50% of MACs: ResNet-18 / MobileNetV2 shapes, 3×224×224, eager fp32.

Candidates, in this one process, 2 threads, interleaved rounds, medians:
  original · slimkit L1 uniform · slimkit L1 global · anchor Torch-Pruning (L1 magnitude,
  MetaPruner, classifier kept; its pruning_ratio bisected to the same 50% MACs) uniform and
  global — each as it comes out of the pruner, and each again after slimkit's deploy step for
  eager (Conv-BN folded, channels-last), so the table separates what pruning wins from what
  the layout wins.
Run:  python benchmarks/pruning.py --all     (every table in a fresh process)
Needs `pip install torch-pruning` (only here; slimkit does not depend on it).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep between calls

import argparse  # noqa: E402
import copy  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

import slimkit as sk  # noqa: E402
from slimkit.bench import Candidate, benchmark  # noqa: E402
from slimkit.bench.tables import each_table_in_own_process  # noqa: E402
from slimkit.deploy.layout import optimize_eager  # noqa: E402
from slimkit.graph.deps import DependencyGraph  # noqa: E402
from slimkit.models import mobilenet_v2, resnet18  # noqa: E402

MODELS = {"resnet18": (resnet18, "fc"), "mobilenet_v2": (mobilenet_v2, "classifier.1")}
TABLES = [("resnet18", 1), ("resnet18", 16), ("mobilenet_v2", 1), ("mobilenet_v2", 16)]


def float_model(name: str) -> torch.nn.Module:
    """Random weights, BN statistics from a few train-mode passes (as after training)."""
    torch.manual_seed(0)
    m = MODELS[name][0]().train()
    with torch.no_grad():
        for _ in range(4):
            m(torch.randn(8, 3, 224, 224))
    return m.eval()


def macs(model, x) -> int:
    return DependencyGraph.build(model, x).macs()


def torch_pruning(model, x, classifier: str, global_: bool, target: float = 0.5):
    """Torch-Pruning's MetaPruner with L1 magnitude; ratio bisected to `target` of MACs."""
    import torch_pruning as tp

    base = macs(model, x)
    lo, hi, best = 0.0, 0.9, None
    for _ in range(14):
        mid = (lo + hi) / 2
        m = copy.deepcopy(model)
        ignored = [dict(m.named_modules())[classifier]]
        pruner = tp.pruner.MetaPruner(m, x, importance=tp.importance.MagnitudeImportance(p=1),
                                      pruning_ratio=mid, ignored_layers=ignored,
                                      global_pruning=global_)
        pruner.step()
        if 1 - macs(m, x) / base >= target:
            hi, best = mid, m
        else:
            lo = mid
    return best.eval()


def table(name: str, batch: int, rounds: int, round_to: int) -> None:
    torch.set_num_threads(2)
    model = float_model(name)
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    x1 = x[:1]
    classifier = MODELS[name][1]
    keep_fc = (sk.PruneRule(classifier, skip=True),)
    built = {"original": model}
    times = {}
    for label, scope in (("uniform", "uniform"), ("global", "global")):
        t = time.perf_counter()
        cfg = sk.PruneConfig(target_macs=0.5, scope=scope, round_to=round_to, rules=keep_fc)
        built[f"slimkit {label}"] = sk.prune(model, cfg, x1)
        times[f"slimkit {label}"] = time.perf_counter() - t
        t = time.perf_counter()
        built[f"Torch-Pruning {label}"] = torch_pruning(model, x1, classifier, scope == "global")
        times[f"Torch-Pruning {label}"] = time.perf_counter() - t
    cands = [Candidate(k, m) for k, m in built.items()]
    cands += [Candidate(f"{k} +fold+NHWC", optimize_eager(m)) for k, m in built.items()]
    res = benchmark(cands, x, rounds=rounds, runs_per_round=2)
    base_macs = macs(model, x1)
    print(f"\n## {name}, batch {batch} (slimkit round_to={round_to})")
    print(res)
    print(f"\n{'candidate':<40}{'params':>12}{'MACs':>9}{'speedup vs original':>22}")
    ref = res.rows[0].median_ms
    for c, r in zip(cands, res.rows, strict=True):
        m = c.model
        core = m.model if hasattr(m, "model") else m
        params = sum(p.numel() for p in core.parameters())
        print(f"{r.name:<40}{params / 1e6:>10.2f} M{macs(core, x1) / base_macs:>9.3f}"
              f"{ref / r.median_ms:>21.2f}×")
    print("\nprune time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", choices=sorted(MODELS), default="resnet18")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--round-to", type=int, default=8)
    ap.add_argument("--all", action="store_true", help="every table, each in its own process")
    a = ap.parse_args()
    if a.all:
        each_table_in_own_process(__file__, TABLES, ["--rounds", str(a.rounds),
                                                     "--round-to", str(a.round_to)])
    else:
        table(a.model, a.batch, a.rounds, a.round_to)


if __name__ == "__main__":
    main()
