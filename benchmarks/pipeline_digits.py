"""The digits recipe (slimkit/examples/recipes/digits.yaml) through `slimkit compress`:

1. accuracy over 5 seeds (each seed: its own source training, pruning, KD, QAT), size ×;
2. latency of seed 0's final model vs fp32 eager and vs ONNX Runtime's own quantize_static of
   the unpruned model, in one process, interleaved (batch 1 and 256);
3. wall time of the pipeline vs the same library calls made by hand (its overhead);
4. resume: SIGKILL at 5 random points, rerun → the same final weights as uninterrupted.

    python benchmarks/pipeline_digits.py [--seeds 5] [--kills 5]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from importlib.resources import files  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import slimkit as sk  # noqa: E402
from slimkit.bench import Candidate, anchors, benchmark  # noqa: E402
from slimkit.deploy.runtimes import installed  # noqa: E402
from slimkit.latency.machine import machine_line  # noqa: E402
from slimkit.pipeline import compress  # noqa: E402

RECIPE = Path(str(files("slimkit.examples") / "recipes" / "digits.yaml"))


def recipe_for(seed: int, d: Path, bench: bool = True) -> Path:
    text = RECIPE.read_text() + f"seed: {seed}\n"
    if not bench:  # accuracy runs: the benchmark stage is measured once, in (2)
        text = text.replace("  - benchmark:\n      batch_sizes: [1, 256]\n"
                            "      anchors: [ort_quantize_static]\n", "")
    p = d / f"digits-{seed}{'' if bench else '-nb'}.yaml"
    p.write_text(text)
    return p


def accuracy(seeds: int, d: Path) -> list[dict]:
    rows = []
    for s in range(seeds):
        t = time.perf_counter()
        rep = compress(recipe_for(s, d, bench=False), d / f"run{s}", progress=False)
        src, fin = rep["source"], rep["final"]
        last = rep["stages"][-1]  # state bytes: the packed weights, not the ONNX file beside
        rows.append({"seed": s, "fp32": src["metric"], "final": fin["metric"],
                     "drop": fin["total_drop"], "size": src["state_bytes"] / last["state_bytes"],
                     "seconds": time.perf_counter() - t})
        print(f"seed {s}: fp32 {src['metric']:.2f}% → {fin['metric']:.2f}% "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
    return rows


def latency(d: Path) -> None:
    from slimkit.data.digits import digits_tensors

    src = sk.load(d / "run0" / "source" / "model")
    final = sk.load(d / "run0" / "model")
    train = digits_tensors()[0]
    calib = [train[i * 64:(i + 1) * 64][0] for i in range(8)]
    for batch in (1, 256):
        x = digits_tensors()[1][:batch][0]
        anchor = anchors.ort_quantize_static(src, x[:2], calib, d / "anchor")
        fp32 = sk.export(src, x[:2], d / "fp32.onnx")
        ours = sk.export(final, x[:2], d / "final.onnx")
        res = benchmark([Candidate("fp32 eager (PyTorch)", src),
                         Candidate("fp32 → ORT", fp32),
                         Candidate("ORT quantize_static int8, unpruned", anchor),
                         Candidate("slimkit pruned+KD+QAT int8 → ORT", ours),
                         Candidate("slimkit pruned+KD+QAT int8 → OpenVINO", ours, "openvino")],
                        x, rounds=20, runs_per_round=5)
        print(f"\n## latency, batch {batch}")
        print(res)
        a = next(r for r in res.rows if r.name.startswith("ORT quantize_static"))
        for r in res.rows[3:]:
            print(f"{r.name}: {a.median_ms / r.median_ms:.2f}× faster than ORT's own int8 of "
                  f"the unpruned model, {r.speedup:.2f}× vs fp32 eager")


def by_hand(seed: int) -> float:
    """The same library calls the recipe makes, without the pipeline around them: train,
    prune + fine-tune, KD, QAT + KD, export, the metric through ONNX Runtime and OpenVINO,
    the OpenVINO IR written, parity with the simulation — each step's metric measured."""
    from slimkit.data.digits import digits_tensors
    from slimkit.distill import Distiller
    from slimkit.metrics import top1
    from slimkit.models import DigitsCNN
    from slimkit.train import TrainConfig, Trainer

    t = time.perf_counter()
    train, val = digits_tensors()
    loader = torch.utils.data.DataLoader(val, batch_size=256)
    torch.manual_seed(seed)
    m = DigitsCNN()
    Trainer(m, TrainConfig(epochs=20, lr=0.003, seed=seed, progress=False), train).fit()
    top1(m.eval(), loader)
    x = train[:1][0]
    small = sk.prune(m, sk.PruneConfig(target_macs=0.5, round_to=8), x)
    Trainer(small, TrainConfig(epochs=6, lr=0.001, seed=seed, progress=False), train).fit()
    top1(small.eval(), loader)
    Trainer(small, TrainConfig(epochs=6, lr=0.0005, seed=seed + 1, progress=False), train,
            loss_fn=Distiller(m, 4, 0.9)).fit()
    top1(small.eval(), loader)
    qc = sk.QuantConfig.w8a8().with_qat(freeze_bn_after=40, freeze_observers_after=60)
    qat = sk.prepare_qat(small, qc, train[:64][0])
    Trainer(qat, TrainConfig(epochs=3, lr=0.0003, seed=seed + 2, progress=False), train,
            loss_fn=Distiller(m, 4, 0.9)).fit()
    q = sk.convert(qat)
    top1(q, loader)
    with tempfile.TemporaryDirectory() as d:
        p = sk.export(q, x, Path(d) / "q.onnx")
        top1(_runtime(p), loader)
        if installed("openvino"):
            import openvino as ov

            top1(_runtime(p, "openvino"), loader)
            ov.save_model(ov.convert_model(str(p)), str(Path(d) / "q.xml"))
        sk.check_parity(q, p, [b[0] for _, b in zip(range(4), loader, strict=False)])
    return time.perf_counter() - t


def _runtime(path, runtime: str = "ort"):
    from slimkit.deploy import session
    from slimkit.pipeline.context import RuntimeModule

    return RuntimeModule(session(path, runtime))


def overhead(d: Path, seed: int = 0, rounds: int = 5) -> None:
    """By hand and through the pipeline, interleaved in rounds (the machine drifts up to 2×
    within minutes): the order alternates from round to round, and each round's pair — run
    back to back — gives one ratio; the median of those is the overhead."""
    hand, pipe = [], []

    def through_pipeline(i: int) -> float:
        t = time.perf_counter()
        compress(recipe_for(seed, d, bench=False), d / f"wall{i}", progress=False)
        return time.perf_counter() - t

    for i in range(rounds):
        if i % 2:
            pipe.append(through_pipeline(i))
            hand.append(by_hand(seed))
        else:
            hand.append(by_hand(seed))
            pipe.append(through_pipeline(i))
    ratios = [p / h - 1 for p, h in zip(pipe, hand, strict=True)]
    print(f"\n## wall time, recipe without the benchmark stage ({rounds} rounds, order "
          f"alternating): by hand {statistics.median(hand):.1f} s, slimkit compress "
          f"{statistics.median(pipe):.1f} s (medians) → pipeline overhead, median of the "
          f"rounds' ratios: {statistics.median(ratios):+.1%} (rounds: "
          f"{', '.join(f'{r:+.1%}' for r in ratios)}); the pipeline adds per-stage "
          "artifacts and checkpoints, MACs, per-attempt latency probes, the report and its "
          "plots")


def resume(d: Path, kills: int) -> None:
    recipe = recipe_for(0, d, bench=False)
    cmd = [sys.executable, "-m", "slimkit.cli", "compress", str(recipe), "--quiet", "--out"]
    t = time.perf_counter()
    subprocess.run([*cmd, str(d / "ref")], check=True, capture_output=True)
    total = time.perf_counter() - t
    ref = load_file(str(d / "ref" / "model" / "weights.safetensors"))
    metric = json.loads((d / "ref" / "report.json").read_text())["final"]["metric"]
    rng = random.Random(0)
    print(f"\n## resume: {kills} SIGKILLs at random points of a {total:.0f} s run")
    for k in range(kills):
        out, at = d / f"kill{k}", rng.uniform(0.05, 0.95) * total
        p = subprocess.Popen([*cmd, str(out)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(at)
        p.send_signal(signal.SIGKILL)
        p.wait()
        subprocess.run([*cmd, str(out)], check=True, capture_output=True)
        w = load_file(str(out / "model" / "weights.safetensors"))
        diff = max(float((w[n].float() - ref[n].float()).abs().max()) for n in ref)
        m = json.loads((out / "report.json").read_text())["final"]["metric"]
        print(f"kill {k}: after {at:5.1f} s → max |Δweight| = {diff:g}, metric {m:.2f}% "
              f"({'same' if m == metric else 'DIFFERENT'})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=7, help="interleaved overhead rounds")
    ap.add_argument("--skip", nargs="*", default=[], choices=["accuracy", "latency",
                                                              "overhead", "resume"])
    a = ap.parse_args()
    print(machine_line(2))
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        rows = accuracy(a.seeds if "accuracy" not in a.skip else 1, d)
        print(f"\n## accuracy, {len(rows)} seeds (each: train, prune 50% MACs, KD, int8 QAT)")
        print(f"{'seed':>4}{'fp32':>9}{'final':>9}{'drop':>8}{'size ×':>9}{'s':>7}")
        for r in rows:
            print(f"{r['seed']:>4}{r['fp32']:>8.2f}%{r['final']:>8.2f}%{r['drop']:>+8.2f}"
                  f"{r['size']:>8.1f}×{r['seconds']:>7.0f}")
        drops = [r["drop"] for r in rows]
        print(f"mean drop {statistics.mean(drops):+.2f} pts (max {max(drops):+.2f}); "
              f"mean final {statistics.mean(r['final'] for r in rows):.2f}%")
        if "latency" not in a.skip:
            latency(d)
        if "overhead" not in a.skip:
            overhead(d, rounds=a.rounds)
        if "resume" not in a.skip:
            resume(d, a.kills)


if __name__ == "__main__":
    main()
