"""Fastest on this machine (issue 16): composed pruning + int8 vs the fastest int8 anchor.

ResNet-18 / MobileNetV2 / ResNet-50 shapes, 3×224×224, random weights with BN statistics
(latency only; accuracy of the composition on a trained model: benchmarks/pipeline_digits.py).
Candidates, in this one process, 2 threads, interleaved rounds, medians:
  anchors   ORT quantize_static int8 (QDQ, per-channel) · OpenVINO + NNCF int8 (when nncf is
            installed: pip install 'slimkit[bench]')
  slimkit   int8 unpruned → ORT and → OpenVINO (QDQ placed per runtime) ·
            50% MACs (L1, uniform, classifier kept) + int8 → ORT / OpenVINO, channels rounded
            to a fixed 8 and to round_to="auto" (this machine's measured latency steps)
Ratios are the fastest anchor's median latency over each candidate's (higher = faster).

    python benchmarks/speed.py --model resnet18 --batch 1      one table
    python benchmarks/speed.py --all                           every table, fresh processes
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see cnn_int8.py

import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

import slimkit as sk  # noqa: E402
from slimkit.bench import Candidate, anchors, benchmark  # noqa: E402
from slimkit.bench.tables import print_vs_fastest_anchor, table_main  # noqa: E402
from slimkit.models import mobilenet_v2, resnet18, resnet50  # noqa: E402

MODELS = {"resnet18": (resnet18, "fc"), "mobilenet_v2": (mobilenet_v2, "classifier.1"),
          "resnet50": (resnet50, "fc")}
TABLES = [(m, b) for m in ("resnet18", "mobilenet_v2", "resnet50") for b in (1, 16)]


def float_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    m = MODELS[name][0]().train()
    with torch.no_grad():  # BN statistics as after training
        for _ in range(4):
            m(torch.randn(8, 3, 224, 224))
    return m.eval()


def has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def anchor_files(model, x, calib, d: Path) -> tuple[list[Candidate], list[str]]:
    """The int8 anchors at their best settings: ORT quantize_static (QDQ, u8s8, per-channel)
    and OpenVINO + NNCF where installed; (candidates, notes on what was skipped)."""
    cands = [Candidate("ORT quantize_static int8",
                       anchors.ort_quantize_static(model, x, calib, d / "ort"), "ort")]
    if has("nncf") and has("openvino"):
        cands.append(Candidate("OpenVINO + NNCF int8",
                               anchors.openvino_nncf(model, x, calib, d / "nncf"), "openvino"))
        return cands, []
    return cands, ["OpenVINO + NNCF anchor skipped: nncf not installed"]


def slimkit_files(model, x, calib, d: Path, tag: str) -> list[Candidate]:
    """int8 of `model`, exported once per runtime with that runtime's QDQ placement."""
    q = sk.quantize(model, sk.QuantConfig.w8a8(), calib=calib, progress=False)
    out = [Candidate(f"slimkit {tag} → ORT", sk.export(q, x, d / f"{tag}-ort.onnx",
                                                         runtime="ort"), "ort")]
    if has("openvino"):
        out.append(Candidate(f"slimkit {tag} → OpenVINO",
                             sk.export(q, x, d / f"{tag}-ov.onnx", runtime="openvino"),
                             "openvino"))
    return out


def table(name: str, batch: int, rounds: int) -> None:
    torch.set_num_threads(2)
    model = float_model(name)
    g = torch.Generator().manual_seed(1)
    calib = [torch.randn(1, 3, 224, 224, generator=g) for _ in range(32)]
    x = torch.randn(batch, 3, 224, 224, generator=g)
    notes = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        cands, skipped = anchor_files(model, x, calib, d)
        notes += skipped
        n_anchors = len(cands)
        cands += slimkit_files(model, x, calib, d, "int8")
        keep = (sk.PruneRule(MODELS[name][1], skip=True),)
        for rt in (8, "auto"):
            t = time.perf_counter()
            cfg = sk.PruneConfig(target_macs=0.5, scope="uniform", round_to=rt, rules=keep)
            small = sk.prune(model, cfg, torch.randn(1, 3, 224, 224))
            rep = sk.record_of(small).report
            notes.append(f"50% MACs round_to={rt}: MACs ×{rep.macs_after / rep.macs_before:.3f}, "
                         f"params ×{rep.params_after / rep.params_before:.3f} "
                         f"({time.perf_counter() - t:.0f} s incl. any latency sweep)")
            cands += slimkit_files(small, x, calib, d, f"50%+int8 r{rt}")
        res = benchmark(cands, x, rounds=rounds, runs_per_round=3)
        # the unpruned-int8 bar (≥ 1.0× each anchor), head to head: two files, more rounds
        by = {c.name: c for c in cands}
        duels = [benchmark([by[a], by[f"slimkit int8 → {rt}"]], x, rounds=2 * rounds,
                           runs_per_round=5)
                 for a, rt in (("ORT quantize_static int8", "ORT"),
                               ("OpenVINO + NNCF int8", "OpenVINO"))
                 if a in by and f"slimkit int8 → {rt}" in by]
    print_vs_fastest_anchor(res, [c.name for c in cands], n_anchors, f"{name}, batch {batch}")
    for duel in duels:
        a, c = duel.rows
        print(f"head to head, {duel.runs} runs each: {c.name} {c.median_ms:.2f} ms vs {a.name} "
              f"{a.median_ms:.2f} ms → {a.median_ms / c.median_ms:.2f}× the anchor's speed")
    for n in notes:
        print(n)


def main() -> None:
    table_main(__doc__, __file__, MODELS, TABLES, table, rounds=8)


if __name__ == "__main__":
    main()
