"""Issue 16's goal, both halves: slimkit's composed model (pruned + int8) ≥ 2× the fastest int8
anchor on this machine, at ≤ 1 pt accuracy drop on a trained model of the same family.

accuracy  the recipes slimkit/examples/recipes/{resnet18,mobilenet_v2}_digits32.yaml through
          `slimkit compress`, one run per seed: train on real digits at 3×32×32, drop residual
          blocks (granularity depth, importance: the loss of skipping each), prune channels to
          a MACs target at this machine's latency steps (round_to auto), fine-tune, distil,
          int8, OpenVINO. The drop is the source's top-1 (torch fp32) minus the final model's
          top-1 measured through OpenVINO, on the 450 held-out images.
speed     seed 0's networks at 3×224×224, batch 1 and 16, each table in a fresh process: the
          trained source through ORT quantize_static (QDQ, u8s8, per-channel) and OpenVINO +
          NNCF int8 (the anchors), slimkit int8 of the source, and the recipe's final model
          (same trained weights) → ORT and → OpenVINO. Convolutions do not care about the
          input size, so the networks timed are exactly the ones whose accuracy is reported.
          Interleaved rounds, medians, 2 threads; ratio = fastest anchor's latency / candidate's.

    python benchmarks/composed.py                      both halves, both families
    python benchmarks/composed.py --seeds 3 --out runs/composed
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see cnn_int8.py

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from importlib.resources import files  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from speed import anchor_files, slimkit_files  # noqa: E402  (benchmarks/speed.py)

import slimkit as sk  # noqa: E402
from slimkit.bench import Candidate, benchmark, machine_line  # noqa: E402
from slimkit.bench.tables import print_vs_fastest_anchor  # noqa: E402
from slimkit.deploy.runtimes import installed  # noqa: E402

FAMILIES = ("resnet18", "mobilenet_v2")
RECIPES = Path(str(files("slimkit.examples") / "recipes"))


def recipe(family: str, seed: int, out: Path) -> Path:
    p = out / f"{family}-{seed}.yaml"
    p.write_text((RECIPES / f"{family}_digits32.yaml").read_text() + f"seed: {seed}\n")
    return p


def runtime_metric(report: dict, runtime: str) -> float:
    export = next(s for s in report["stages"] if s["kind"] == "export")
    return next(a["metric"] for a in export["attempts"] if a["label"] == f"{runtime} runtime")


def accuracy(family: str, seeds: int, out: Path) -> None:
    from slimkit.pipeline import compress

    rows = []
    for s in range(seeds):
        t = time.perf_counter()
        rep = compress(recipe(family, s, out), out / f"{family}-{s}", progress=False)
        src = rep["source"]
        final = runtime_metric(rep, "openvino")
        last = rep["stages"][-1]
        rows.append((s, src["metric"], final, src["metric"] - final, src["macs"] / last["macs"],
                     src["params"] / last["params"], time.perf_counter() - t))
    print(f"\n## {family}: accuracy on digits 3×32×32 (450 test images; 1 image = 0.22 pt)")
    print(f"{'seed':>4} {'fp32 %':>8} {'final % (OpenVINO int8)':>24} {'drop':>7} "
          f"{'MACs ÷':>7} {'params ÷':>9} {'s':>5}")
    for s, a, b, d, m, p, sec in rows:
        print(f"{s:>4} {a:>8.2f} {b:>24.2f} {d:>+7.2f} {m:>7.2f} {p:>9.2f} {sec:>5.0f}")
    drops = [r[3] for r in rows]
    print(f"mean drop {statistics.mean(drops):+.2f} pts (max {max(drops):+.2f}); "
          f"goal ≤ 1 pt: {'met' if max(drops) <= 1.0 else 'NOT met'}")


def speed(family: str, batch: int, run: Path, rounds: int) -> None:
    torch.set_num_threads(2)
    source = sk.load(run / "source" / "model").eval()
    final = sk.load(run / "model").eval()
    g = torch.Generator().manual_seed(1)
    calib = [torch.randn(1, 3, 224, 224, generator=g) for _ in range(32)]
    x = torch.randn(batch, 3, 224, 224, generator=g)
    d = run / f"speed-b{batch}"
    d.mkdir(exist_ok=True)
    cands, _ = anchor_files(source, x, calib, d)
    n_anchors = len(cands)
    cands += slimkit_files(source, x, calib, d, "int8")
    runtimes = ["ort"] + (["openvino"] if installed("openvino") else [])
    for rt in runtimes:
        cands.append(Candidate(f"slimkit composed → {rt}",
                               sk.export(final, x, d / f"composed-{rt}.onnx", runtime=rt), rt))
    res = benchmark(cands, x, rounds=rounds, runs_per_round=3)
    ratios = print_vs_fastest_anchor(res, [c.name for c in cands], n_anchors,
                                     f"{family}, batch {batch}, 3×224×224 (seed 0's trained "
                                     "networks)")
    top = max((n for n in ratios if "composed" in n), key=ratios.get)
    ratio = ratios[top]
    print(f"composed vs the fastest anchor: {ratio:.2f}× ({top}); goal ≥ 2×: "
          f"{'met' if ratio >= 2 else 'NOT met'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--family", choices=FAMILIES, nargs="*", default=list(FAMILIES))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batches", type=int, nargs="*", default=[1, 16])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("runs/composed"))
    ap.add_argument("--part", choices=("all", "accuracy", "speed"), default="all")
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)  # one speed table (internal)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.batch is not None:
        speed(a.family[0], a.batch, a.out / f"{a.family[0]}-0", a.rounds)
        return
    print(f"# benchmarks/composed.py\n{machine_line()}")
    for family in a.family:
        if a.part in ("all", "accuracy"):
            accuracy(family, a.seeds, a.out)
        if a.part in ("all", "speed"):
            for b in a.batches:  # a fresh process per table (allocator, thread pools)
                subprocess.run([sys.executable, __file__, "--family", family, "--batch", str(b),
                                "--rounds", str(a.rounds), "--out", str(a.out)], check=True)


if __name__ == "__main__":
    main()
