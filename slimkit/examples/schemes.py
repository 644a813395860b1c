"""Example: train DigitsCNN on real digits, then compress it several ways and print one table
(scheme, accuracy, change vs fp32, logit SQNR vs fp32, weight bytes), the int8 parity with ONNX
Runtime, distillation and pruning side by side.

    python -m slimkit.examples.schemes [--cache-dir .slimkit] [--json out.json]
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from slimkit.atomic import atomic_path
from slimkit.bench import benchmark
from slimkit.data import load_digits
from slimkit.data.digits import digits_tensors
from slimkit.deploy import check_parity, export
from slimkit.examples.demo_distill import format_distill, run_distill
from slimkit.examples.demo_prune import format_prune, run_prune
from slimkit.graph.modules import state_bytes
from slimkit.latency.machine import machine_line
from slimkit.models import DigitsCNN
from slimkit.quant import MSE, MinMax, QuantConfig, convert, prepare_qat, quantize, sqnr
from slimkit.quant.inspect import weight_sqnr
from slimkit.train import TrainConfig, Trainer, predict

# "recipe" versions the training code itself: bump it when the code (not the numbers)
# changes, so a cached checkpoint from an older recipe is never reused.
TRAIN = {"epochs": 20, "lr": 3e-3, "seed": 0, "width": 1.0, "recipe": 3}
QAT = {"epochs": 8, "lr": 5e-4, "freeze_bn_after": 150, "freeze_observers_after": 200}


@dataclass
class Row:
    scheme: str
    accuracy: float
    delta: float
    logit_sqnr_db: float
    weight_sqnr_db: float | None  # None: weights were retrained (QAT), no fixed reference
    weight_bytes: int
    seconds: float


def trained_model(cache_dir: Path, progress: bool = True) -> nn.Module:
    """Train DigitsCNN once; later runs load the checkpoint cached under `cache_dir`."""
    key = hashlib.sha1(json.dumps(TRAIN, sort_keys=True).encode()).hexdigest()[:10]
    path = cache_dir / f"digits_cnn-{key}.pt"
    torch.manual_seed(TRAIN["seed"])  # before construction: the init is part of the recipe
    model = DigitsCNN(TRAIN["width"])
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    train, _ = digits_tensors()
    cfg = TrainConfig(epochs=TRAIN["epochs"], lr=TRAIN["lr"], seed=TRAIN["seed"],
                      progress=progress)
    Trainer(model, cfg, train).fit()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    return model.eval()


@dataclass
class Demo:
    rows: list[Row]
    parity: dict  # slimkit's int8 simulation vs ONNX Runtime's integer execution
    latency: str  # the benchmark table: fp32 eager / fp32 ORT / int8 ORT at batch 256
    latency_rows: list[dict]
    distill: list  # DistillRow: KD for a half-width student and for w4a4 QAT
    prune: object  # demo_prune.PruneDemo: 50% channels cut + fine-tune


def run_demo(cache_dir: Path = Path(".slimkit"), progress: bool = True) -> Demo:
    train, test = load_digits(seed=TRAIN["seed"])
    t0 = time.perf_counter()
    fp32 = trained_model(cache_dir, progress)
    ref_logits, labels = predict(fp32, test)
    rows = [_row("fp32", fp32, test, ref_logits, labels, None, time.perf_counter() - t0)]
    rows[0].weight_sqnr_db = float("inf")

    def ptq(name: str, config: QuantConfig) -> nn.Module:
        t = time.perf_counter()
        q = quantize(fp32, config, calib=train, progress=progress)
        row = _row(name, q, test, ref_logits, labels, rows[0], time.perf_counter() - t)
        row.weight_sqnr_db = weight_sqnr(fp32, q)["*"]
        rows.append(row)
        return q

    w8a8 = ptq("w8a8 static PTQ", QuantConfig.w8a8())
    ptq("w4 per-channel, min-max", QuantConfig.weight_only(4, observer=MinMax()))
    ptq("w4 per-channel, MSE", QuantConfig.weight_only(4, observer=MSE()))
    ptq("w4 k-means codebook", QuantConfig.nonuniform("kmeans", 4))
    ptq("w4 power-of-two", QuantConfig.nonuniform("pow2", 4))

    t = time.perf_counter()
    torch.manual_seed(TRAIN["seed"])
    cfg = QuantConfig.w4a8().with_qat(freeze_bn_after=QAT["freeze_bn_after"],
                                      freeze_observers_after=QAT["freeze_observers_after"])
    qat = prepare_qat(fp32, cfg, next(iter(train))[0])
    Trainer(qat, TrainConfig(epochs=QAT["epochs"], lr=QAT["lr"], seed=TRAIN["seed"],
                             progress=progress), digits_tensors()[0]).fit()
    q = convert(qat)
    rows.append(_row("w4a8 QAT", q, test, ref_logits, labels, rows[0], time.perf_counter() - t))
    return Demo(rows, *_deploy(fp32, w8a8, test, cache_dir), run_distill(fp32),
                run_prune(fp32))


def _deploy(fp32: nn.Module, int8: nn.Module, test, cache_dir: Path):
    """Export float and int8 to ONNX, check parity on the test set, time all three."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    x = next(iter(test))[0]  # (256, 1, 8, 8)
    f_path = export(fp32, x, cache_dir / "digits_fp32.onnx")
    q_path = export(int8, x, cache_dir / "digits_int8.onnx")
    parity = check_parity(int8, q_path, test).to_dict()
    res = benchmark({"fp32 eager (PyTorch)": fp32, "fp32 → ONNX Runtime": f_path,
                     "int8 → ONNX Runtime": q_path}, x, rounds=6, runs_per_round=3)
    return parity, str(res), [asdict(r) for r in res.rows]


def _row(name, model, test, ref_logits, labels, base: Row | None, seconds) -> Row:
    logits, _ = predict(model, test)
    acc = 100.0 * (logits.argmax(1) == labels).float().mean().item()
    base_acc = acc if base is None else base.accuracy
    return Row(name, acc, acc - base_acc, sqnr(ref_logits, logits), None, state_bytes(model),
               seconds)


def _db(v: float | None) -> str:
    if v is None:
        return "—"
    return "exact" if v == float("inf") else f"{v:.1f} dB"


def format_table(rows: list[Row]) -> str:
    cols = f"{'scheme':<26}{'accuracy':>9}{'Δ pts':>8}{'logit SQNR':>12}{'weight SQNR':>13}"
    head = f"{cols}{'state bytes':>20}{'time s':>8}"
    lines = [head, "-" * len(head)]
    base = rows[0].weight_bytes
    for r in rows:
        size = f"{r.weight_bytes:,} ({base / r.weight_bytes:.1f}×)"
        lines.append(f"{r.scheme:<26}{r.accuracy:>8.2f}%{r.delta:>+8.2f}{_db(r.logit_sqnr_db):>12}"
                     f"{_db(r.weight_sqnr_db):>13}{size:>20}{r.seconds:>8.1f}")
    return "\n".join(lines)


def format_parity(p: dict) -> str:
    return (f"int8 in ONNX Runtime vs slimkit's simulation, 450 test images: top-1 agreement "
            f"{100 * p['top1_agreement']:.2f}%, {100 * p['within_one_step']:.2f}% of logits "
            f"within one int8 step, cosine {p['cosine']:.6f}")


def demo_to_json(demo: Demo) -> str:
    """Standard JSON: an exact (infinite) SQNR is written as null."""
    def finite(d: dict) -> dict:
        return {k: None if isinstance(v, float) and math.isinf(v) else v for k, v in d.items()}

    return json.dumps({"rows": [finite(asdict(r)) for r in demo.rows], "parity": demo.parity,
                       "latency": demo.latency_rows,
                       "distill": [asdict(r) for r in demo.distill],
                       "prune": demo.prune.to_dict()}, indent=2)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cache-dir", type=Path, default=Path(".slimkit"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    t = time.perf_counter()
    print(machine_line(2) + "\n")
    demo = run_demo(a.cache_dir, progress=not a.quiet)
    print(format_table(demo.rows))
    print(f"\n{format_parity(demo.parity)}\n")
    print(demo.latency)
    print("\n" + format_distill(demo.distill))
    print("\n" + format_prune(demo.prune))
    print(f"\nfinished in {time.perf_counter() - t:.1f} s")
    if a.json is not None:
        a.json.write_text(demo_to_json(demo))


if __name__ == "__main__":
    main()
