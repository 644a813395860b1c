"""CNN int8 table: ResNet-18 / MobileNetV2 / ResNet-50 shapes, 3×224×224, random weights.

Candidates, all in this one process, 2 threads, interleaved rounds, medians:
  torch eager fp32 (as is, and BN-folded + channels-last) · ORT fp32 · slimkit int8 → ORT
  (uint8 activations; and int8 activations, s8s8, to measure the choice) · slimkit int8 →
  OpenVINO (if installed) ·
  anchor: ONNX Runtime's own quantize_static at its best settings (dynamo export →
  quant_pre_process → QDQ, per-channel int8 weights, uint8 activations), same float model and
  the same 32 calibration inputs.
Run one table per process:  python benchmarks/cnn_int8.py --model resnet18 --batch 1
or every table, each in a fresh process:  python benchmarks/cnn_int8.py --all
"""

from __future__ import annotations

import os

# Several runtimes share two cores in one process: idle OpenMP threads must sleep, not spin,
# or each candidate taxes the next (set before torch loads OpenMP).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import slimkit as sk  # noqa: E402
from slimkit.bench import Candidate, anchors, benchmark  # noqa: E402
from slimkit.bench.tables import table_main  # noqa: E402
from slimkit.deploy.layout import optimize_eager  # noqa: E402
from slimkit.deploy.runtimes import installed  # noqa: E402
from slimkit.models import mobilenet_v2, resnet18, resnet50  # noqa: E402

MODELS = {"resnet18": resnet18, "mobilenet_v2": mobilenet_v2, "resnet50": resnet50}
TABLES = [("resnet18", 1), ("resnet18", 16), ("mobilenet_v2", 1), ("mobilenet_v2", 16),
          ("resnet50", 1)]


def float_model(name: str) -> torch.nn.Module:
    """Random weights, with BN statistics from a few train-mode passes (as after training)."""
    torch.manual_seed(0)
    m = MODELS[name]().train()
    with torch.no_grad():
        for _ in range(4):
            m(torch.randn(8, 3, 224, 224))
    return m.eval()


def ort_quantize_static(model, x, calib, out_dir: Path) -> Path:
    """ORT's own int8 at its best settings (slimkit.bench.anchors), float export first."""
    path = anchors.ort_quantize_static(model, x, calib, out_dir)
    (out_dir / "anchor_fp32.onnx").replace(out_dir / "fp32.onnx")
    return path


def cosine(ref: np.ndarray, out: np.ndarray) -> float:
    ref, out = ref.reshape(len(ref), -1), out.reshape(len(out), -1)
    c = (ref * out).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(out, axis=1)
    return float(c.mean())


def table(name: str, batch: int, rounds: int) -> None:
    torch.set_num_threads(2)
    model = float_model(name)
    g = torch.Generator().manual_seed(1)
    calib = [torch.randn(1, 3, 224, 224, generator=g) for _ in range(32)]
    x = torch.randn(batch, 3, 224, 224, generator=g)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        t = time.perf_counter()  # ORT's whole pipeline: float export, pre-process, quantize
        ort_path = ort_quantize_static(model, x, calib, d)
        t_ort = time.perf_counter() - t
        t = time.perf_counter()
        q = sk.quantize(model, sk.QuantConfig.w8a8(), calib=calib, progress=False)
        t_sk_q = time.perf_counter() - t
        t = time.perf_counter()
        sk.export(q, x, d / "slimkit_int8.onnx")
        t_sk_e = time.perf_counter() - t
        s8 = sk.quantize(model, sk.QuantConfig.w8a8(signed_acts=True), calib=calib,
                         progress=False)
        sk.export(s8, x, d / "slimkit_s8s8.onnx")
        cands = [Candidate("torch eager fp32", model),
                 Candidate("torch fp32 folded+NHWC", optimize_eager(model)),
                 Candidate("ORT fp32", d / "fp32.onnx"),
                 Candidate("slimkit int8 → ORT", d / "slimkit_int8.onnx"),
                 Candidate("slimkit s8s8 → ORT", d / "slimkit_s8s8.onnx"),
                 Candidate("ORT quantize_static int8", ort_path)]
        if installed("openvino"):
            cands.insert(5, Candidate("slimkit int8 → OpenVINO", d / "slimkit_int8.onnx",
                                      "openvino"))
        res = benchmark(cands, x, rounds=rounds, runs_per_round=3)
        cos = _cosines(model, cands, x)
        # the bar, measured head to head: just the two int8 ORT files, more rounds
        by_name = {c.name: c for c in cands}
        duel = benchmark([by_name["ORT quantize_static int8"], by_name["slimkit int8 → ORT"]],
                         x, rounds=2 * rounds, runs_per_round=5)
    print(f"\n## {name}, batch {batch}")
    print(res)
    anchor = next(r for r in res.rows if r.name.startswith("ORT quantize_static"))
    print(f"\n{'candidate':<28}{'cos vs fp32':>12}{'latency vs anchor':>19}")
    for r in res.rows:
        print(f"{r.name:<28}{cos[r.name]:>12.5f}{r.median_ms / anchor.median_ms:>18.2f}×")
    a, s = duel.rows
    print(f"\nhead to head, {duel.runs} runs each: slimkit int8 → ORT {s.median_ms:.2f} ms vs "
          f"ORT quantize_static {a.median_ms:.2f} ms → {s.median_ms / a.median_ms:.2f}× the "
          f"anchor's latency")
    print(f"\nfloat model → int8 ONNX file, 32 calibration inputs: slimkit {t_sk_q:.1f} s "
          f"quantize + {t_sk_e:.1f} s export = {t_sk_q + t_sk_e:.1f} s; ORT float export + "
          f"quant_pre_process + quantize_static = {t_ort:.1f} s → "
          f"{(t_sk_q + t_sk_e) / t_ort:.2f}× ORT's time")


def _cosines(model, cands, x) -> dict[str, float]:
    from slimkit.deploy.runtimes import session

    ref = model(x).detach().numpy()
    return {c.name: cosine(ref, session(c.model, c.runtime).run((x,))) for c in cands}


def main() -> None:
    table_main(__doc__, __file__, MODELS, TABLES, table, rounds=12)


if __name__ == "__main__":
    main()
