"""Any task through `slimkit compress`, measured (issue: any task, never silently nothing).

1. regression — slimkit/examples/recipes/diabetes_regression.yaml: test MSE of the original,
   after each stage and final (int8 through ONNX Runtime), params and MACs ×, and the final
   int8 file's speed against ONNX Runtime's quantize_static of the original model, both in
   one process, interleaved, 2 threads (ratios of medians; p90 beside them);
2. the audio case — slimkit/examples/recipes/audio_conv1d.yaml: a small 1-D conv classifier
   whose prune stage may raise the metric; the run must end with an int8 model within the
   overall budget;
3. per task, the loss of the first 5 fine-tune steps of a prune stage (nonzero and falling
   on average): classification, multilabel, regression, embedding, token classification,
   custom.

    python benchmarks/tasks.py [--only regression,audio,losses]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
from importlib.resources import files  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from slimkit.bench import Candidate, benchmark  # noqa: E402
from slimkit.examples.tasks import diabetes_tensors  # noqa: E402
from slimkit.latency.machine import machine_line  # noqa: E402
from slimkit.pipeline import compress  # noqa: E402

RECIPES = Path(str(files("slimkit.examples") / "recipes"))


def stage_table(report: dict) -> None:
    src = report["source"]
    unit = report["metric"]["unit"]
    print(f"| stage | {unit} | change vs original | params × | MACs × | kept |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| original | {src['metric']:.4g} | | 1.00 | 1.00 | |")
    for s in report["stages"]:
        if s["kind"] in ("export", "benchmark"):
            continue
        print(f"| {s['index']}: {s['kind']} | {s['metric']:.4g} | {s['total_drop']:+.3g} | "
              f"{src['params'] / s['params']:.2f} | {src['macs'] / (s['macs'] or 1):.2f} | "
              f"{s['kept'][:70]} |")
    export = next((s for s in report["stages"] if s["kind"] == "export"), None)
    if export:
        for a in export["attempts"]:
            print(f"| final through {a['label']} | {a['metric']:.4g} | {a['total_drop']:+.3g} "
                  "| | | |")
    fin = report["final"]
    word = "rise" if report["metric"]["higher_is_better"] is False else "drop"
    print(f"\nfinal {unit} {fin['metric']:.4g}: {word} {fin['total_drop']:+.3g} of at most "
          f"{report['budget']['max_drop']:g} (overall budget)")


def speed(run: Path, rounds: int = 40) -> None:
    """The final int8 file vs ORT quantize_static of the original, interleaved."""
    final = run / "export" / "model.onnx"
    anchor = run / "benchmark" / "ort_quantize_static.onnx"
    fp32 = run / "benchmark" / "m0.onnx"  # the original, exported by the benchmark stage
    cands = [Candidate("slimkit int8 (final)", str(final), "ort"),
             Candidate("ORT quantize_static (original)", str(anchor), "ort"),
             Candidate("original fp32", str(fp32), "ort")]
    _, test = diabetes_tensors()
    print("\n| batch | candidate | median ms | p90 ms | vs quantize_static |")
    print("| --- | --- | --- | --- | --- |")
    for b in (1, 32):
        x = test.tensors[0][:b]
        res = benchmark(cands, x, rounds=rounds, runs_per_round=5, threads=2)
        ref = res.rows[1].median_ms
        for r in res.rows:
            print(f"| {b} | {r.name} | {r.median_ms:.4f} | {r.p90_ms:.4f} | "
                  f"{ref / r.median_ms:.2f}× |")


def regression(d: Path) -> None:
    print("\n## 1. regression: diabetes MLP (test MSE of the standardized target)\n")
    report = compress(RECIPES / "diabetes_regression.yaml", d / "reg", progress=False)
    stage_table(report)
    quant = next(s for s in report["stages"] if s["kind"] == "quantize")
    assert not quant["skipped"], "no quantized model at the end"
    speed(d / "reg")


def audio(d: Path) -> None:
    print("\n## 2. audio-style conv classifier (top-1 %, 400 test clips: 0.25 pt each)\n")
    report = compress(RECIPES / "audio_conv1d.yaml", d / "audio", progress=False)
    stage_table(report)
    quant = next(s for s in report["stages"] if s["kind"] == "quantize")
    print("\nquantize attempts: " + "; ".join(
        f"{a['label']}: {a['metric']:.4g} (fits per stage {a['fits']}, overall "
        f"{a['fits_overall']}, {a['seconds']:.0f} s)" for a in quant["attempts"]))
    print(f"kept: {quant['kept']}; the run ends "
          + ("quantized" if not quant["skipped"] else "FLOAT"))


LOSS_RECIPES = {
    "classification": ("model: {factory: slimkit.models:DigitsCNN, kwargs: {width: 0.5}, "
                       "train: {epochs: 3}}\ndata: {digits: {}}"),
    "multilabel": ("model: {factory: slimkit.models:DigitsCNN, kwargs: {width: 0.5, "
                   "num_classes: 4}, train: {epochs: 3}}\n"
                   "data: {factory: slimkit.examples.tasks:digit_attribute_loaders}\n"
                   "task: multilabel"),
    "regression": ("model: {factory: slimkit.examples.tasks:diabetes_mlp, kwargs: {hidden: 32},"
                   " train: {epochs: 20, batch_size: 32}}\n"
                   "data: {factory: slimkit.examples.tasks:diabetes_loaders, batch_size: 32}"),
    "embedding": ("model: {factory: slimkit.models:DigitsCNN, kwargs: {width: 0.5}}\n"
                  "data: {factory: slimkit.examples.tasks:digit_image_loaders}"),
    "token_classification": ("model: {factory: slimkit.examples.tasks:TokenTagger, "
                             "train: {epochs: 3}}\n"
                             "data: {factory: slimkit.examples.tasks:token_tag_loaders}"),
    "custom": ("model: {factory: slimkit.examples.tasks:diabetes_mlp, kwargs: {hidden: 32}, "
               "train: {epochs: 20, batch_size: 32}}\n"
               "data: {factory: slimkit.examples.tasks:diabetes_loaders, batch_size: 32}\n"
               "task: {kind: custom, loss: 'slimkit.examples.tasks:absolute_error'}\n"
               "eval: {metric: 'slimkit.examples.tasks:mean_absolute_error', "
               "higher_is_better: false}"),
}


def losses(d: Path) -> None:
    print("\n## 3. the first 5 fine-tune losses of a prune stage (ratio 0.3), per task\n")
    print("| task | inferred / stated | fine-tune loss | steps 1–5 | falling |")
    print("| --- | --- | --- | --- | --- |")
    for kind, head in LOSS_RECIPES.items():
        recipe = d / f"loss-{kind}.yaml"
        recipe.write_text(head + "\nbudget: {max_drop: 100}\nstages:\n"
                          "  - prune: {ratio: 0.3, finetune: {epochs: 1, lr: 0.001}}\n")
        report = compress(recipe, d / f"loss-{kind}", progress=False)
        run = report["stages"][0]["training"][0]
        first = run["first_losses"]
        falling = sum(b < a for a, b in zip(first, first[1:], strict=False))
        print(f"| {report['task']['kind']} | {report['task']['reason']} | {run['loss']} | "
              + ", ".join(f"{v:.4g}" for v in first)
              + f" | {falling}/4 steps, last {first[-1] / first[0]:.2f}× the first |")
        assert all(v > 0 for v in first), f"{kind}: a zero loss"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="regression,audio,losses")
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(machine_line(2))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for part in args.only.split(","):
            {"regression": regression, "audio": audio, "losses": losses}[part](d)
        print("\n(report.json of each run: " + json.dumps(str(d)) + ", removed on exit)")


if __name__ == "__main__":
    main()
