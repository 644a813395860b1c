"""How sure a ratio is (latency/stats.py): the bootstrap interval against exact cases, the
noisy rules, and the measurement core's answers to a failing candidate and a short cap."""

import os
import time

import numpy as np
import pytest
import torch
from torch import nn

import slimkit as sk
from slimkit.latency import stats
from slimkit.latency.measure import Candidate


def _rounds(values, runs=3):
    return [[v] * runs for v in values]


def test_equal_times_every_round_give_an_exact_ratio():
    r, lo, hi = stats.ratio_interval(_rounds([2.0] * 8), _rounds([1.0] * 8))
    assert r == lo == hi == 2.0


def test_the_interval_holds_the_ratio_and_narrows_with_more_rounds():
    rng = np.random.default_rng(0)

    def width(n):
        base = _rounds(2.0 + 0.2 * rng.standard_normal(n))
        other = _rounds(1.0 + 0.1 * rng.standard_normal(n))
        r, lo, hi = stats.ratio_interval(base, other)
        assert lo <= r <= hi
        return stats.half_width(r, lo, hi)

    assert width(200) < width(8)


def test_rounds_stay_paired_a_slow_spell_hitting_both_cancels():
    # every round twice as slow as the last for both candidates: each round's ratio is 3
    base = [[3.0 * 2 ** k] for k in range(10)]
    other = [[1.0 * 2 ** k] for k in range(10)]
    r, lo, hi = stats.ratio_interval(base, other)
    assert r == pytest.approx(3.0) and lo >= 2.0 and hi <= 4.5


def test_one_round_has_an_unbounded_interval():
    r, lo, hi = stats.ratio_interval(_rounds([2.0]), _rounds([1.0]))
    assert r == 2.0 and lo == 0.0 and hi == float("inf")
    assert stats.half_width(r, lo, hi) > stats.NOISY


def test_settled_waits_for_two_windows_that_agree():
    assert not stats.settled([5.0, 4.0, 3.0, 1.0, 1.0])
    assert not stats.settled([5.0, 4.0, 3.0, 1.0, 1.0, 1.0])
    assert stats.settled([1.02, 1.0, 0.99, 1.0, 1.01, 1.0])


def test_a_load_above_the_cores_or_busy_neighbours_make_a_measurement_contended():
    cores = len(os.sched_getaffinity(0))
    assert stats.contended(cores + 0.5, None) and not stats.contended(0.0, 0.0)
    assert not stats.contended(cores + 0.5, 0.01)  # the load average trails: /proc/stat wins
    assert stats.contended(0.0, stats.OTHERS + 0.01) and not stats.contended(0.0, 0.01)
    assert "noisy" in stats.format_ratio(2.0, 1.5, 2.5, True)
    assert stats.format_ratio(2.0, 1.9, 2.1, False) == "2.00× (1.90–2.10)"


def test_others_share_counts_the_machines_busy_time_beyond_this_process():
    before = stats.cpu_snapshot()
    if before is None:
        pytest.skip("/proc/stat is not readable here")
    t = time.process_time()
    while time.process_time() - t < 0.3:  # this process busy: not "others"
        pass
    share = stats.others_share(before, stats.cpu_snapshot())
    assert share is not None and 0.0 <= share <= 1.0
    assert stats.others_share(before, before) is None  # no time passed: no share


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()


def test_a_candidate_that_fails_gets_a_row_saying_why_and_the_others_are_measured(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx file")
    x = torch.randn(2, 16)
    res = sk.benchmark([Candidate("eager", _mlp()), Candidate("broken", str(bad)),
                        Candidate("ort", str(sk.export(_mlp(), x, tmp_path / "m.onnx")))],
                       x, rounds=2, runs_per_round=2, warmup=1, cap_s=1)
    by = {r.name: r for r in res.rows}
    assert by["broken"].error and "failed" in str(res)
    assert by["ort"].error is None and by["ort"].median_ms > 0 and by["ort"].ci
    assert res.raw_ms[1] == [[], []] or all(not t for t in res.raw_ms[1])


def test_a_failing_first_candidate_every_ratio_is_against_is_an_error(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(RuntimeError, match="first candidate .broken."):
        sk.benchmark([Candidate("broken", str(bad)), Candidate("eager", _mlp())],
                     torch.randn(2, 16), rounds=1, runs_per_round=1, warmup=1, cap_s=1)


def test_a_cap_too_short_for_any_interval_is_marked_noisy_not_dropped(tmp_path):
    x = torch.randn(2, 16)
    res = sk.benchmark({"eager": _mlp(), "ort": sk.export(_mlp(), x, tmp_path / "m.onnx")},
                       x, rounds=1, runs_per_round=1, warmup=1, target=0.0001, cap_s=0.0)
    assert res.rounds == 1 and res.stopped.startswith("time cap")
    row = res.rows[1]
    assert row.error is None and row.median_ms > 0  # measured, shown
    assert row.noisy and "noisy" in str(res)  # one round: no interval to trust


def test_batch_means_widen_the_interval_when_the_ratio_drifts_over_time():
    # the rounds' ratio moves from 2 to 3 over the run: within any stretch of rounds the
    # bootstrap sees little spread, the batches see the drift
    base = [[2.0 + k / 40, 2.0 + k / 40] for k in range(40)]
    other = [[1.0, 1.0] for _ in range(40)]
    steady = [[2.5, 2.5] for _ in range(40)]
    drift = stats.half_width(*stats.ratio_interval(base, other))
    assert drift > stats.NOISY  # flagged
    assert stats.half_width(*stats.ratio_interval(steady, other)) == 0.0
