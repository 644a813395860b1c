"""Tiny spaces and a deterministic evaluator for the search tests, importable by worker
processes ('tests.search.helpers:tiny_space')."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import torch
from torch import nn

from slimkit.search import Choice, SearchConfig, Space, search_worker
from slimkit.search.storage import open_storage


class TinyNet(nn.Module):
    def __init__(self, width: int, depth: int, act: str) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        c = 16
        for _ in range(depth):
            layers += [nn.Linear(c, width), nn.ReLU() if act == "relu" else nn.Tanh()]
            c = width
        layers.append(nn.Linear(c, 10))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, 4, 4) → (N, 10)
        return self.net(x)


def tiny_space(widths=(4, 8, 16, 32)) -> Space:
    genes = (Choice("width", tuple(widths)), Choice("depth", (1, 2, 3)),
             Choice("act", ("relu", "tanh"), ordered=False))
    return Space("tiny", genes, lambda a: TinyNet(a["width"], a["depth"], a["act"]), (1, 4, 4))


def failing_space() -> Space:
    """width 4 cannot be built: the builder raises."""
    def build(a):
        if a["width"] == 4:
            raise ValueError("width 4 is not supported by this builder")
        return TinyNet(a["width"], a["depth"], a["act"])
    return Space("tiny", tiny_space().genes, build, (1, 4, 4))


def score(encoding) -> float:
    """A fixed landscape: best at width index 2, depth index 2, act index 0."""
    w, d, a = encoding
    return 100.0 - 10 * abs(w - 2) - 5 * abs(d - 2) - 3 * a


class ScoreEvaluator:
    """Deterministic 'accuracy' from the encoding; optionally sleeps and logs each call."""

    def __init__(self, sleep_s: float = 0.0, log: str | None = None) -> None:
        self.sleep_s, self.log, self.calls = sleep_s, log, []

    def __call__(self, space, encoding, model) -> dict:
        self.calls.append(tuple(encoding))
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{os.getpid()} {list(encoding)}\n")
        time.sleep(self.sleep_s)
        return {"accuracy": score(encoding)}


ROOT = Path(__file__).resolve().parents[2]


def worker_process(cfg: SearchConfig, log: Path, sleep_s: float = 0.05) -> subprocess.Popen:
    """A search worker in its own process (this module's main), sharing only the storage."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "tests.search.helpers",
                             json.dumps(cfg.to_dict()), str(log), str(sleep_s)], cwd=ROOT,
                            env=env, stderr=subprocess.PIPE)


def stored_study(cfg: SearchConfig) -> optuna.Study:
    return optuna.load_study(study_name=cfg.study_name, storage=open_storage(cfg))


if __name__ == "__main__":  # a worker process: python -m tests.search.helpers CONFIG_JSON LOG
    torch.set_num_threads(1)
    cfg = SearchConfig.from_dict(json.loads(sys.argv[1]))
    sleep_s = float(sys.argv[3]) if len(sys.argv) > 3 else 0.05
    search_worker(cfg, tiny_space(), ScoreEvaluator(sleep_s, sys.argv[2]))
