"""Training step time and accuracy, fp32 vs bf16 autocast vs fp16 autocast + GradScaler,
DigitsCNN on real digits.

Step time: the precisions alternate in rounds of 10 optimizer steps on the same batches
(after warm-up), 2 threads, medians, each ratio with its 95% bootstrap interval over rounds
(slimkit.latency.stats). Accuracy: one full 20-epoch run each, same seed. The last column is
what slimkit's Trainer says about each precision on this CPU (train/precision.py): the
PrecisionWarning's advice where the CPU lacks the arithmetic units, or the units it has.
No target: the ratio depends on the CPU (bf16 needs AVX512-BF16/AMX to be fast, fp16
AVX512-FP16; fp16 is really meant for CUDA).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from slimkit.data.digits import digits_tensors  # noqa: E402
from slimkit.latency.machine import machine_line  # noqa: E402
from slimkit.latency.stats import format_ratio, half_width, overloaded, ratio_interval  # noqa: E402
from slimkit.models import DigitsCNN  # noqa: E402
from slimkit.target import detect  # noqa: E402
from slimkit.train import TrainConfig, Trainer  # noqa: E402
from slimkit.train.precision import slow_precision  # noqa: E402

PRECISIONS = ("fp32", "bf16", "fp16")


def step_times(rounds: int = 21, steps: int = 10, batch: int = 64) -> dict[str, list[float]]:
    train, _ = digits_tensors()
    x = torch.stack([train[i][0] for i in range(batch)])
    y = torch.stack([train[i][1] for i in range(batch)])
    runs = {}
    for prec in PRECISIONS:
        torch.manual_seed(0)
        model = DigitsCNN().train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        scaler = torch.amp.GradScaler("cpu", enabled=prec == "fp16")
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(prec)

        def step(model=model, opt=opt, scaler=scaler, dtype=dtype):
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

        runs[prec] = step
    times = {k: [] for k in runs}
    for f in runs.values():
        for _ in range(5):
            f()
    for r in range(rounds):
        for k in (list(runs)[r % 3:] + list(runs)[:r % 3]):  # rotate the order each round
            t = time.perf_counter()
            for _ in range(steps):
                runs[k]()
            times[k].append((time.perf_counter() - t) / steps)
    return times


def accuracy(precision: str) -> tuple[float, float]:
    train, test = digits_tensors()
    torch.manual_seed(0)
    t = Trainer(DigitsCNN(), TrainConfig(epochs=20, lr=3e-3, precision=precision,
                                         progress=False), train, test)
    start = time.perf_counter()
    t.fit()
    return t.evaluate(), time.perf_counter() - start


def _said(prec: str) -> str:
    why = slow_precision(prec)
    if why:
        return "warns: " + why.rsplit("; ", 1)[1]
    return "fast: " + " / ".join(detect().float_units(prec))


def main() -> None:
    print(machine_line(2))  # where this ran: CPU, ISA, runtime versions
    print(f"load average (1 min) {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    torch.set_num_threads(2)
    times = step_times()
    print("DigitsCNN training, batch 64, 2 threads, 21 rounds × 10 steps")
    print(f"{'precision':<10}{'step ms':>9}{'time vs fp32 (95% interval)':>30}"
          f"{'accuracy':>10}{'run s':>8}  Trainer says")
    for prec in PRECISIONS:
        med = statistics.median(times[prec])
        r, lo, hi = ratio_interval([[t] for t in times[prec]], [[t] for t in times["fp32"]])
        noisy = half_width(r, lo, hi) > 0.10 or overloaded()
        acc, secs = accuracy(prec)
        print(f"{prec:<10}{med * 1e3:>9.2f}{format_ratio(r, lo, hi, noisy):>30}"
              f"{acc:>9.2f}%{secs:>8.1f}  {_said(prec)}")


if __name__ == "__main__":
    main()
