"""`slimkit compress` launched by torchrun: rank 0 runs the recipe once (calibration, export,
report), its training (the source model, QAT with distillation) runs on both ranks; a rank
killed mid-run makes torchrun restart the job, which resumes from the run directory."""

import json
import os
import subprocess
import sys

import pytest
import torch

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not torch.distributed.is_available(),
                                                   reason="torch.distributed missing")]

RECIPE = """
model: {factory: slimkit.models:DigitsCNN, kwargs: {width: 0.5}, train: {epochs: 3, lr: 0.005}}
data: {digits: {}}
budget: {max_drop: 5.0}
stages:
  - quantize: {preset: w8a8, qat: {epochs: 1, kd: true}, fallback: false}
"""


def _compress(tmp_path, out: str, ranks: int, restarts: int = 0, **env):
    launcher = [sys.executable]
    if ranks > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone",
                     f"--nproc_per_node={ranks}", f"--max_restarts={restarts}",
                     "--monitor_interval=0.5"]
    cmd = [*launcher, "-m", "slimkit.cli", "compress", str(tmp_path / "r.yaml"), "--out",
           str(tmp_path / out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1",
           **env}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env,
                          cwd=tmp_path)


def test_compress_under_torchrun_trains_on_every_rank_and_reports_once(tmp_path):
    (tmp_path / "r.yaml").write_text(RECIPE)
    r = _compress(tmp_path, "two", ranks=2)
    assert r.returncode == 0, r.stderr[-4000:]
    report = json.loads((tmp_path / "two" / "report.json").read_text())
    runs = [t for s in report["stages"] for t in s.get("training", [])]
    assert runs and all(t["ranks"] == 2 for t in runs)  # QAT trained on both ranks
    assert r.stdout.count("final") <= 1  # one summary: rank 0's
    one = _compress(tmp_path, "one", ranks=1)
    assert one.returncode == 0, one.stderr[-4000:]
    single = json.loads((tmp_path / "one" / "report.json").read_text())
    assert all(t["ranks"] == 1 for s in single["stages"] for t in s.get("training", []))
    # the same recipe, trained on 2 ranks or 1: the same accuracy within the tolerance
    assert abs(report["final"]["metric"] - single["final"]["metric"]) <= 1.5
