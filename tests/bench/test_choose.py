"""Picking the fastest (bench/choose.py): every runtime and precision available here, a
variant whose outputs drift refused, a runtime that is not installed skipped and named."""

import subprocess
import sys

import pytest

import slimkit as sk
from slimkit.bench.choose import COSINE_FLOOR, agreement, has_bf16, pick
from slimkit.latency.measure import BenchResult, Candidate, Row


def test_choose_tries_each_runtime_and_precision_and_says_why(tiny_files, calib):
    pytest.importorskip("openvino")
    res = sk.benchmark({"fp32": tiny_files["fp32"], "int8": tiny_files["int8"]}, calib[0],
                       rounds=2, runs_per_round=2, warmup=1, choose=True, cap_s=3)
    by = {(r.name, r.runtime, r.precision) for r in res.rows}
    for name in ("fp32", "int8"):
        assert {(name, "ort", "f32"), (name, "openvino", "f32")} <= by
        assert ((name, "openvino", "bf16") in by) == has_bf16()
    refs = [r for r in res.rows if r.fidelity is None]
    assert [(r.name, r.runtime) for r in refs] == [("fp32", "ort"), ("int8", "ort")]
    for r in res.rows:  # each variant compared with its own file's ORT run
        if r.fidelity is not None:
            assert r.fidelity["cosine"] > 0.99 and r.fidelity["top1"] is not None
    assert set(res.choice) == {"fp32", "int8"}
    for name, c in res.choice.items():
        fastest = min((r for r in res.rows if r.name == name), key=lambda r: r.median_ms)
        if fastest.fidelity is None or fastest.fidelity["cosine"] >= COSINE_FLOOR:
            assert c["median_ms"] == fastest.median_ms
        assert c["why"].startswith(f"{name}: {c['runtime']}") and c["machine"]
    assert "fastest: int8:" in str(res)


def _row(name, runtime, precision, ms, fid=None):
    return Row(name, runtime, ms, ms, ms, 1.0, 1.0, 0.0, None, None, precision, fid)


def test_a_faster_variant_whose_outputs_drift_is_refused_and_named():
    cands = [Candidate("m", "m.onnx", "ort"), Candidate("m", "m.onnx", "openvino", "f32", None, 0),
             Candidate("m", "m.onnx", "openvino", "bf16", None, 0)]
    res = BenchResult(1, 2, 4, [_row("m", "ort", "f32", 3.0),
                                _row("m", "openvino", "f32", 2.0, {"cosine": 1.0, "top1": 1.0}),
                                _row("m", "openvino", "bf16", 1.0, {"cosine": 0.97, "top1": 0.9})],
                      raw_ms=[[[ms, ms]] * 6 for ms in (3.0, 2.0, 1.0)])
    c = pick(res, cands)["m"]
    assert (c["runtime"], c["precision"], c["median_ms"]) == ("openvino", "f32", 2.0)
    assert "refused (outputs differ): openvino bf16 (cosine 0.9700)" in c["why"]
    assert "1.50× (1.50–1.50) faster than ort" in c["why"]  # the ratio and its interval


def test_agreement_is_cosine_and_top1():
    import numpy as np

    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert agreement(a, a) == {"cosine": pytest.approx(1.0), "top1": 1.0}
    assert agreement(a, a[::-1])["top1"] == 0.0


def test_a_runtime_that_is_not_installed_is_skipped_and_named(tiny_files, calib):
    code = ("import sys; sys.modules['openvino'] = None\n"
            "import torch, slimkit as sk\n"
            f"res = sk.benchmark({{'m': {str(tiny_files['fp32'])!r}}}, torch.randn(1, 3, 32, 32),"
            " rounds=1, runs_per_round=1, warmup=1, choose=True)\n"
            "print([r.runtime for r in res.rows], res.skipped)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "['ort']" in out and "openvino: not installed" in out
