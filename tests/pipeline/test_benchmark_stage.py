"""The benchmark stage with every runtime, bf16 and both anchors: the fastest named with the
machine and why, per-layer times, the speed against the fastest anchor."""


import pytest

import slimkit as sk
from slimkit.target import detect
from tests.pipeline.conftest import compressed
from tests.pipeline.recipes import write

STAGES = """  - prune: {ratio: 0.3, finetune: {epochs: 1, lr: 0.001}}
  - distill: {epochs: 1, lr: 0.0005}
  - quantize: {preset: w8a8}
  - export: {runtimes: [ort]}
  - benchmark: {batch_sizes: [1], rounds: 1, runs_per_round: 2, runtimes: [torch, ort], cap_s: 2}
"""
BENCH = """  - quantize: {preset: w8a8}
  - benchmark: {batch_sizes: [1, 8], rounds: 2, runs_per_round: 2, cap_s: 3,
                anchors: [ort_quantize_static, openvino_nncf]}
"""


@pytest.mark.slow
def test_benchmark_stage_on_every_runtime_with_anchors(tmp_path):
    pytest.importorskip("nncf")
    report = compressed(write(tmp_path, **{STAGES: BENCH}), tmp_path / "run")
    info = report["stages"][-1]["info"]
    for b in ("1", "8"):
        f = info["fastest"][b]
        assert f["model"] == "0:quantize" and f["runtime"] in ("ort", "openvino")
        assert f["why"].startswith("0:quantize: ") and detect().model in f["machine"]
        runtimes = {(r["model"], r["runtime"], r["precision"]) for r in info["batches"][b]}
        assert ("anchor openvino_nncf", "openvino", "f32") in runtimes
        assert ("anchor ort_quantize_static", "ort", "f32") in runtimes
        assert info["vs_anchor"][b]["speedup"] > 0
        assert info["layers"][b]["rows"]
    steps = sk.record_of(sk.load(tmp_path / "run" / "model")).steps
    assert steps[-1].kind == "deployment"
    assert set(steps[-1].config["fastest"]) == {"1", "8"}
