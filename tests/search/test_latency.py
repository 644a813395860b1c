"""The per-layer latency table (slimkit/latency/table.py): real ONNX Runtime sessions on
tiny layers, the cache stamped per machine, atomic, resumable."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import slimkit.atomic as atomic
from slimkit.latency.table import LatencyTable, LayerSpec, layer_onnx, layer_specs

SPECS = [LayerSpec("conv", 4, 8, (3, 3), (1, 1), (1, 1), 1, 6, 6),
         LayerSpec("depthwise", 8, 8, (3, 3), (2, 2), (1, 1), 8, 6, 6),
         LayerSpec("linear", 32, 10, bias=True)]


def test_layer_specs_shapes_and_macs():
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                      nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4), nn.Flatten(),
                      nn.Linear(64, 10))
    specs = [s for _, s in layer_specs(m, torch.randn(1, 1, 8, 8))]
    assert [s.kind for s in specs] == ["conv", "depthwise", "linear"]
    assert specs[1].out_hw() == (4, 4) and specs[1].h == 8
    assert [s.macs() for s in specs] == [8 * 8 * 4 * 9, 4 * 4 * 4 * 9, 640]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
def test_one_layer_onnx_runs_with_the_layer_shape(spec):
    sess = ort.InferenceSession(layer_onnx(spec, 2), providers=["CPUExecutionProvider"])
    shape = [2, spec.c_in] if spec.kind == "linear" else [2, spec.c_in, spec.h, spec.w]
    y = sess.run(None, {"x": np.zeros(shape, np.float32)})[0]
    want = [2, spec.c_out] if spec.kind == "linear" else [2, spec.c_out, *spec.out_hw()]
    assert list(y.shape) == want


def test_table_measures_caches_and_predicts(tmp_path):
    t = LatencyTable(batch=2, cache_dir=tmp_path)
    assert t.measure(SPECS) == 3 and t.measure(SPECS) == 0  # cached: nothing re-measured
    ms = t.lookup(SPECS)
    assert all(v > 0 for v in ms)
    data = json.loads(t.path.read_text())
    assert data["target"] == t.target.key() and data["runtime"] == "ort"
    assert data["runtime_version"] == ort.__version__ and len(data["entries"]) == 3
    assert LatencyTable(batch=2, cache_dir=tmp_path).entries == t.entries  # read back
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind
    m = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.Flatten(), nn.Linear(288, 10))
    p = t.predict(m, torch.randn(1, 4, 6, 6))
    assert p.total_ms == pytest.approx(p.layers_ms + p.overhead_ms) == pytest.approx(
        t.total(p.layers_ms, 2))
    assert p.layers_ms == pytest.approx(sum(v for _, v in p.per_layer))


def test_a_cache_from_another_machine_or_runtime_version_is_ignored(tmp_path):
    t = LatencyTable(batch=2, cache_dir=tmp_path)
    t.measure(SPECS[:1])
    data = json.loads(t.path.read_text())
    for field, value in (("target", "0123456789ab"), ("runtime_version", "0.0.1")):
        t.path.write_text(json.dumps({**data, field: value}))
        assert LatencyTable(batch=2, cache_dir=tmp_path).entries == {}
    assert t.path.name == f"layer-latency-{t.target.key()}-ort-{ort.__version__}.json"


def test_an_interrupted_sweep_resumes_and_the_file_is_never_half_written(tmp_path, monkeypatch):
    t = LatencyTable(batch=2, cache_dir=tmp_path)
    monkeypatch.setattr(LatencyTable, "CHUNK", 1)
    bad = LayerSpec("conv", 3, 8, (3, 3), groups=2, h=6, w=6)  # 3 channels in 2 groups
    with pytest.raises(Exception):  # noqa: B017 — ORT refuses the layer mid-sweep
        t.measure([SPECS[0], bad, SPECS[1]])
    saved = LatencyTable(batch=2, cache_dir=tmp_path)
    assert len(saved.entries) == 1  # the chunk done before the failure is kept
    assert saved.missing(SPECS[:2]) == [SPECS[1]]  # a new sweep measures only the rest
    before = t.path.read_bytes()

    def crash(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(atomic.os, "replace", crash)  # the rename fails: disk full
    saved.entries["x"] = 1.0
    with pytest.raises(OSError):
        saved.save()
    assert t.path.read_bytes() == before  # the old file is intact …
    assert not list(tmp_path.glob(".*tmp"))  # … and no partial file is left


def test_tables_sharing_a_file_keep_each_others_entries(tmp_path):
    """Search workers on one machine share the cache file: a save merges what the file holds
    (the saving table's own entries win where both have one)."""
    a, b = LatencyTable(batch=2, cache_dir=tmp_path), LatencyTable(batch=2, cache_dir=tmp_path)
    a.entries.update(x=1.0, y=2.0)
    a.overheads["k"] = {"scale": 2.0}
    a.save()
    b.entries.update(y=3.0, z=4.0)
    b.save()
    assert LatencyTable(batch=2, cache_dir=tmp_path).entries == {"x": 1.0, "y": 3.0, "z": 4.0}
    assert b.entries["x"] == 1.0 and b.overheads == {"k": {"scale": 2.0}}


def test_bad_table_settings_are_named():
    with pytest.raises(Exception, match="LatencyTable.precision='int4' is not allowed"):
        LatencyTable(precision="int4")
    with pytest.raises(Exception, match="LayerSpec.kind='pool' is not allowed"):
        LayerSpec("pool", 1, 1)


def _small_net(width: int) -> nn.Module:
    torch.manual_seed(width)
    return nn.Sequential(nn.Conv2d(4, width, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(width, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 6 * 6, 10)).eval()


def test_calibration_reads_each_layer_inside_its_network(tmp_path):
    """Every table layer is paired with its node in the network's ORT profile (call order),
    the in-network fit is saved and read back, and total() is the documented formula."""
    t = LatencyTable(batch=2, cache_dir=tmp_path)
    nets = {f"w{w}": (_small_net(w), torch.randn(1, 4, 6, 6)) for w in (4, 8, 16)}
    stale = t._key(layer_specs(*nets["w8"])[0][1])
    t.entries[stale] = 1e3  # swept once, in a (very) slow spell
    joint = t.measure_jointly(nets)
    for j in joint.values():
        assert j.count == 3 and j.inside is not None and len(j.inside) == 3
        assert all(v > 0 for v in (*j.alone, *j.inside)) and j.net_ms > 0
        assert j.weight_mb == pytest.approx(sum(j.layer_mb))
    assert joint["w8"].weight_mb == pytest.approx((4 * 8 * 9 + 8 * 8 * 9 + 288 * 10) * 4 / 1e6)
    c = t.calibrate(nets, repeats=2)
    assert set(c) == {"scale", "per_mb", "per_layer", "base"}
    info = t.calibration_info
    assert info["networks"] == 3 and np.isfinite(info["loo_error"])
    assert all(np.isfinite(v) for v in c.values()) and c["scale"] > 0
    assert LatencyTable(batch=2, cache_dir=tmp_path).calibration == c  # saved with the table
    # the calibration's pooled lone times replace the entries of its layers
    assert 0 < t.entries[stale] < 1e3
    assert t.missing([s for m, x in nets.values() for _, s in layer_specs(m, x)]) == []
    want = c["scale"] * 1.0 + c["per_mb"] * 0.5 + c["per_layer"] * 3 + c["base"]
    assert t.total(1.0, 3, 0.5) == pytest.approx(max(want, 0.5))
    rows = t.check({"w8": nets["w8"]})
    assert rows[0]["measured_ms"] > 0 and np.isfinite(rows[0]["error"])


def test_the_rest_of_a_run_is_fitted_on_unprofiled_networks():
    """With ≥ 8 networks of spread layer counts, per_layer and base are the least-squares fit
    of what whole runs cost beyond the fitted layers (exact on exact data); with fewer, the
    in-network intercept stays and base is the median residual."""
    from slimkit.latency.table import MIN_NETS_FOR_PER_LAYER, Joint, _fit_rest

    def net(n, alone_ms, mb):  # a run = 1.1 · Σ alone + 0.02 · MB + 0.004 / layer + 0.05
        alone = [alone_ms] * n
        return Joint(1.1 * sum(alone) + 0.02 * mb + 0.004 * n + 0.05, alone, None, mb,
                     [mb / n] * n)

    joint = [net(n, 0.01 * (1 + n % 3), 0.1 * n) for n in range(3, 3 + MIN_NETS_FOR_PER_LAYER)]
    per_layer, base = _fit_rest(joint, 1.1, 0.02, c=0.5)
    assert per_layer == pytest.approx(0.004) and base == pytest.approx(0.05)
    few = joint[:3]
    per_layer, base = _fit_rest(few, 1.1, 0.02, c=0.001)
    assert per_layer == 0.001 and base == pytest.approx(0.003 * 4 + 0.05)  # median: 4 layers


def _exact_net(n, alone_ms):
    """A network whose layers run inside it at 1.1 · alone + 0.02 · MB + 0.001 and whose whole
    run adds 0.003 / layer + 0.05 on top of them — exactly."""
    from slimkit.latency.table import Joint

    alone = [alone_ms * (1 + i % 2) for i in range(n)]
    mbs = [0.01 * (i + 1) for i in range(n)]
    inside = [1.1 * a + 0.02 * mb + 0.001 for a, mb in zip(alone, mbs, strict=True)]
    return Joint(sum(inside) + 0.003 * n + 0.05, alone, inside, sum(mbs), mbs)


def test_calibration_on_exact_networks_predicts_an_unseen_one_exactly():
    """fit_calibration recovers the terms of exact data, and the leave-one-out error (each
    network predicted by the fit on the others) is then zero; fewer than 3 networks: none."""
    from slimkit.latency.table import _loo_error, fit_calibration

    joint = [_exact_net(n, 0.01 * (1 + n % 3)) for n in range(3, 13)]
    c = fit_calibration(joint)
    assert c == pytest.approx({"scale": 1.1, "per_mb": 0.02, "per_layer": 0.004, "base": 0.05})
    assert _loo_error(joint) == pytest.approx(0.0, abs=1e-9)
    assert _loo_error(joint[:2]) is None


def test_repeated_joint_runs_are_pooled_by_median():
    """One slow run among three cannot move the pooled times: each is the median across runs."""
    from slimkit.latency.table import Joint, _pooled

    runs = [Joint(1.0, [0.2, 0.3], [0.25, 0.35], 0.5, [0.2, 0.3]),
            Joint(1.5, [0.3, 0.4], [0.3, 0.5], 0.5, [0.2, 0.3]),  # a slow spell
            Joint(1.1, [0.21, 0.29], [0.24, 0.36], 0.5, [0.2, 0.3])]
    p = _pooled(runs)
    assert p.net_ms == 1.1 and p.alone == [0.21, 0.3] and p.inside == [0.25, 0.36]
    assert p.weight_mb == 0.5 and _pooled([*runs[:2], Joint(1.0, [0.2, 0.3], None, 0.5,
                                                            [0.2, 0.3])]).inside is None


def test_a_scoped_calibration_is_its_own(tmp_path):
    """Calibrations are kept per scope (a search space): another scope, or none, still
    predicts Σ kernels; the scoped one is read back with how it was made."""
    t = LatencyTable(batch=2, cache_dir=tmp_path, scope="space:a")
    t.overheads[t._calib_key()] = {"scale": 0.5, "per_mb": 0.0, "per_layer": 0.0, "base": 0.1,
                                   "networks": 10, "loo_error": 0.04}
    t.save()
    again = LatencyTable(batch=2, cache_dir=tmp_path, scope="space:a")
    assert again.calibrated and again.total(1.0, 3) == pytest.approx(0.6)
    assert again.calibration_info["networks"] == 10
    for other in ("space:b", ""):
        o = LatencyTable(batch=2, cache_dir=tmp_path, scope=other)
        assert not o.calibrated and o.total(1.0, 3) == 1.0 and o.calibration_info is None

