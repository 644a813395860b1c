"""Channel-count sweeps (bench/channel_steps.py): where latency steps, measured once per
machine; the cache survives a kill, and another machine's cache is never used."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from slimkit.deploy.runtimes import RuntimeUnavailable
from slimkit.latency.channel_steps import (
    ChannelSteps,
    SweepKind,
    isotonic,
    plateau_ends,
    sweep_counts,
)
from slimkit.latency.table import LatencyTable


def test_isotonic_is_the_non_decreasing_least_squares_fit():
    assert isotonic([1, 3, 2, 4]) == [1, 2.5, 2.5, 4]
    assert isotonic([5, 4, 3]) == [4, 4, 4]
    assert isotonic([1, 2, 3]) == [1, 2, 3]


def test_plateau_ends_are_where_latency_rises():
    counts = [8, 16, 24, 32, 40, 48, 56, 64]
    stairs = [1.0, 1.0, 1.01, 1.0, 2.0, 2.02, 2.0, 2.01]  # tiles of 32 channels
    assert plateau_ends(counts, stairs, 0.04) == [32, 64]
    spike = [1.0, 1.6, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0]  # noise at 16 splits off 8; 32 still ends
    assert plateau_ends(counts, spike, 0.04) == [8, 32, 64]
    ramp = [float(c) for c in counts]  # no steps: every count is worth keeping
    assert plateau_ends(counts, ramp, 0.04) == counts


def test_sweep_counts_cover_the_range_coarser_at_large_counts():
    c = sweep_counts(2048, (100,))
    assert c[:3] == [8, 16, 24] and 100 in c and c[-1] == 2048
    assert {b - a for a, b in zip(c, c[1:], strict=False) if a >= 1056} == {32}
    assert sweep_counts(5) == [5]


def test_a_sweep_is_measured_once_and_cached_per_machine(tmp_path):
    steps = ChannelSteps("ort", "int8", cache_dir=tmp_path)
    kind = SweepKind("conv", 3)
    curve = steps.curve(kind, 24)
    assert list(curve) == [8, 16, 24] and all(v > 0 for v in curve.values())
    again = ChannelSteps("ort", "int8", cache_dir=tmp_path)
    assert again.table.missing([kind.spec(c) for c in curve]) == []  # nothing re-measured
    assert again.curve(kind, 24) == curve
    allowed = steps.allowed([(kind, 2)], 24)
    assert allowed[-1] == 24 and set(allowed) <= {8, 16, 24}
    assert steps.table.target.key() in steps.table.path.name


_SWEEP = """
import sys
from slimkit.latency.channel_steps import ChannelSteps, SweepKind
from slimkit.latency.table import LatencyTable
LatencyTable.CHUNK = 1
ChannelSteps("ort", "fp32", cache_dir=sys.argv[1]).curve(SweepKind("conv", 3), 256)
"""


def test_a_killed_sweep_resumes_and_its_cache_is_never_half_written(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _SWEEP, str(tmp_path)],
                            env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    t0 = time.time()
    while time.time() - t0 < 120:
        files = list(tmp_path.glob("layer-latency-*.json"))
        if files and len(json.loads(files[0].read_text() or "{}").get("entries", {})) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    data = json.loads(files[0].read_text())  # whole JSON: each save was atomic
    done = len(data["entries"])
    assert 2 <= done < 32
    steps = ChannelSteps("ort", "fp32", cache_dir=tmp_path)
    specs = [SweepKind("conv", 3).spec(c) for c in sweep_counts(256)]
    assert len(steps.table.missing(specs)) == 32 - done  # the rest, and only the rest
    # a write cut by SIGKILL may leave its temp file; the resumed sweep's next save removes it
    assert all(f".{proc.pid}." in p.name for p in tmp_path.glob(".*tmp"))
    steps.table.save()
    assert not list(tmp_path.glob(".*tmp"))


def test_a_cache_from_another_machine_is_ignored_and_re_measured(tmp_path):
    steps = ChannelSteps("ort", "fp32", cache_dir=tmp_path)
    kind = SweepKind("linear")
    steps.curve(kind, 16)
    data = json.loads(steps.table.path.read_text())
    fake = {k: 1e6 for k in data["entries"]}  # absurd times, "measured" elsewhere
    steps.table.path.write_text(json.dumps({**data, "target": "0123456789ab",
                                            "machine": "another CPU", "entries": fake}))
    fresh = ChannelSteps("ort", "fp32", cache_dir=tmp_path)
    assert fresh.table.entries == {}  # ignored
    curve = fresh.curve(kind, 16)
    assert max(curve.values()) < 1e3  # re-measured here …
    back = json.loads(fresh.table.path.read_text())
    assert back["target"] == fresh.table.target.key()  # … and stamped with this machine


def test_a_runtime_that_is_not_installed_is_named():
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from slimkit.latency.table import LatencyTable\n"
            "try:\n    LatencyTable(runtime='openvino')\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "RuntimeUnavailable" in out and "openvino is not installed" in out


def test_bad_sweep_settings_are_named(tmp_path):
    with pytest.raises(Exception, match="SweepKind.kind='pool' is not allowed"):
        SweepKind("pool")
    with pytest.raises(Exception, match="ChannelSteps.tol=2"):
        ChannelSteps("ort", "fp32", cache_dir=tmp_path, tol=2)
    with pytest.raises(Exception, match="LatencyTable.quantile=1.5"):
        LatencyTable(quantile=1.5)
    assert issubclass(RuntimeUnavailable, Exception)
