"""A run killed (SIGKILL) or interrupted (Ctrl-C) at any point continues with the same command
and ends with the same final weights and metric as an uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.pipeline.recipes import write

ROOT = Path(__file__).parents[2]


def _cmd(recipe: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "slimkit.cli", "compress", str(recipe), "--out", str(out),
            "--quiet"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}


def _final(out: Path) -> tuple[dict, float]:
    weights = load_file(str(out / "model" / "weights.safetensors"))
    return weights, json.loads((out / "report.json").read_text())["final"]["metric"]


def _same(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    recipe = write(tmp)
    t = time.perf_counter()
    r = subprocess.run(_cmd(recipe, tmp / "ref"), env=_env(), capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return recipe, tmp, _final(tmp / "ref"), time.perf_counter() - t


def _kill_then_finish(recipe: Path, out: Path, after: float, sig: int) -> int:
    p = subprocess.Popen(_cmd(recipe, out), env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(after)
    p.send_signal(sig)
    p.communicate(timeout=300)
    code = p.returncode
    r = subprocess.run(_cmd(recipe, out), env=_env(), capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return code


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_at_a_random_point_resumes_to_the_same_weights(reference, seed):
    recipe, tmp, (weights, metric), seconds = reference
    after = random.Random(seed).uniform(0.15, 0.9) * seconds
    out = tmp / f"killed{seed}"
    code = _kill_then_finish(recipe, out, after, signal.SIGKILL)
    w, m = _final(out)
    assert _same(w, weights) and m == metric, f"killed after {after:.1f} s (exit {code})"


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(reference):
    recipe, tmp, (weights, metric), seconds = reference
    out = tmp / "interrupted"
    code = _kill_then_finish(recipe, out, 0.5 * seconds, signal.SIGINT)
    assert code in (130, 0)  # 0: it had just finished
    w, m = _final(out)
    assert _same(w, weights) and m == metric
