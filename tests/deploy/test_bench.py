import json

import torch
from torch import nn

import slimkit as sk


def test_benchmark_reports_every_candidate_with_ratios(tmp_path):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8)).eval()
    x = torch.randn(4, 32)
    p = sk.export(m, x, tmp_path / "m.onnx")
    res = sk.benchmark({"eager": m, "ort": p}, x, rounds=3, runs_per_round=2, warmup=1, cap_s=2)
    assert [r.name for r in res.rows] == ["eager", "ort"]
    # at least the 3 rounds asked, more while an interval is wider than ±5% (2 s at most)
    assert res.rows[0].speedup == 1.0 and res.rounds >= 3 and res.runs == 2 * res.rounds
    assert all(len(t) == res.rounds for t in res.raw_ms)  # every round's times, kept
    lo, hi = res.rows[1].ci
    assert lo <= res.rows[1].speedup <= hi and res.stopped
    for r in res.rows:
        assert 0 < r.min_ms <= r.median_ms <= r.p90_ms
        assert r.throughput > 0 and r.size_mb > 0
    back = json.loads(res.to_json())
    assert back["rows"][1]["runtime"] == "ort"
    assert "speedup" in str(res)
    # every table and JSON says where it ran
    from slimkit.target import detect

    assert str(res).splitlines()[0].startswith(f"machine: {detect().model}")
    assert detect().isa() in str(res).splitlines()[0]
    assert back["machine"]["cpu"]["features"] == sorted(detect().features)
    assert back["machine"]["versions"]["onnxruntime"] and back["machine"]["threads"] == 2
