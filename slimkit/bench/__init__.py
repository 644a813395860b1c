"""The benchmark verb: candidates timed side by side (the measurement core is
slimkit.latency.measure), every runtime and precision tried where asked (choose.py), the
anchors (anchors.py), where the time goes per layer (profile.py) and ratio tables (tables.py).
"""

from slimkit.bench.choose import expand, pick
from slimkit.latency.machine import environment, machine_line
from slimkit.latency.measure import BenchResult, Candidate, as_candidates, measure


def benchmark(candidates, example_inputs, *, rounds: int = 10, runs_per_round: int = 3,
              warmup: int = 3, threads: int = 2, choose: bool = False,
              target: float | None = 0.05, cap_s: float = 20.0,
              min_s: float = 3.0) -> BenchResult:
    """`candidates`: {name: nn.Module | .onnx path} or a list of Candidate (to pick the
    runtime). Every candidate gets the same inputs; ratios are against the first.
    choose=True: each model file is tried on every runtime and precision available here
    (ONNX Runtime, OpenVINO, OpenVINO bf16 on CPUs with bf16 units — choose.py), and
    `choice` names the fastest whose outputs match its reference, and why; runtimes that are
    not installed are skipped and named in `skipped`. Rounds go on past `rounds`, for at
    least `min_s` seconds, until every speedup's 95% interval is within ±`target` (None:
    exactly `rounds`) or `cap_s` seconds pass; a ratio still wider than ±10%, or measured on
    a contended machine (other processes busy on > 25% of the CPUs; without /proc/stat, load
    above the cores), is noisy."""
    cands, skipped = as_candidates(candidates), []
    if choose:
        cands, skipped = expand(cands)
    res = measure(cands, example_inputs, rounds=rounds, runs_per_round=runs_per_round,
                  warmup=warmup, threads=threads, skipped=skipped, target=target, cap_s=cap_s,
                  min_s=min_s)
    if choose:
        res.choice = pick(res, cands)
    return res


__all__ = ["BenchResult", "Candidate", "benchmark", "environment", "machine_line"]
