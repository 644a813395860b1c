"""Beyond one machine, measured: the search on a real PostgreSQL server, elastic two-node
training with a killed worker, and how large a model QAT trains sharded (FSDP2) vs replicated
(DDP) within one memory limit per worker.

1. Search: the digits space, proxy-trained candidates (1 thread each), one study of N trials on
   a PostgreSQL server started in a temporary directory (Debian's postgresql): 1 worker process
   vs 4, then 4 with one SIGKILLed mid-search. Trials completed, asked beyond the budget
   (surplus, never evaluated), lost, wall time. The machine's cores bound the speed-up.
2. Elastic training: two torchrun launchers on localhost (c10d rendezvous: two "nodes"), QAT +
   distillation, rank 1 SIGKILLed at step 25: completed or not, the checkpoint it resumed
   from, top-1 vs an uninterrupted run of the same two ranks.
3. FSDP: an MLP of width W (4 W×W layers) with w8a8 QAT and AdamW, 2 ranks under torchrun,
   parallel ddp vs fsdp: the peak resident memory of a worker while it trains (VmHWM reset
   after the model is built and wrapped; the float original the QAT model's record keeps is
   released), for each W; for each memory limit, the largest W whose peak stays under it
   (measured, not enforced: the limit is a line drawn through the measured peaks).

    python benchmarks/scale_out.py [--trials 16] [--limits-gib 2,3,4,6,8]
                                   [--parts search,elastic,fsdp]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from slimkit.latency.machine import machine_line  # noqa: E402

WIDTHS = (1024, 2048, 3072, 4096, 5120, 6144, 7168, 8192)


# ---- 1. search on PostgreSQL ------------------------------------------------------------------
def _search_config(url: str, trials: int):
    from slimkit.search import SearchConfig

    return SearchConfig.from_dict({"space": "digits", "strategy": "random", "n_trials": trials,
                                   # trials of seconds, as real searches have (shorter ones
                                   # measure process start-up, not the search)
                                   "proxy": {"epochs": 10, "data_fraction": 1.0},
                                   "storage": url, "seed": 0})


def _search_run(url: str, trials: int, workers: int, kill_after: int | None) -> dict:
    import optuna

    from slimkit.search.runner import _worker_main
    from slimkit.search.storage import open_storage, tally

    cfg = _search_config(url, trials)
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    procs = [ctx.Process(target=_worker_main, args=(cfg.to_dict(), "bench")) for _ in
             range(workers)]
    for p in procs:
        p.start()
    killed = 0
    if kill_after is not None:
        study = None
        while True:
            time.sleep(0.2)
            try:
                study = study or optuna.load_study(study_name=cfg.study_name,
                                                   storage=open_storage(cfg))
            except KeyError:
                continue
            if tally(study).complete < kill_after:
                continue
            victim = _running_worker(study, {p.pid for p in procs})
            if victim is not None:  # in the middle of a trial
                os.kill(victim, signal.SIGKILL)
                killed = 1
                break
    for p in procs:
        p.join()
    seconds = time.perf_counter() - t0
    study = optuna.load_study(study_name=cfg.study_name, storage=open_storage(cfg))
    t = tally(study)
    trials_ = study.get_trials(deepcopy=False)
    surplus = sum("surplus" in tr.user_attrs for tr in trials_)
    evaluated = sum("metrics" in tr.user_attrs for tr in trials_)
    workers_seen = len({tr.user_attrs["lease"][0] for tr in trials_
                        if tr.state.name == "COMPLETE"})
    return {"workers": workers, "killed": killed, "seconds": seconds, "complete": t.complete,
            "evaluated": evaluated, "surplus": surplus, "lost": t.lost, "failed": t.failed,
            "took_part": workers_seen}


def _running_worker(study, pids: set[int]) -> int | None:
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("lease", [None])[0]
        pid = int(worker.rpartition(":")[2]) if worker else None
        if pid in pids and "metrics" not in t.user_attrs:
            return pid
    return None


def search_part(trials: int) -> None:
    from tests.postgres import missing, postgres_server

    why = missing()
    if why:
        print(f"search on PostgreSQL: skipped ({why})\n")
        return
    print(f"1. search on PostgreSQL: digits space, {trials} proxy-trained trials, one thread "
          "per worker process")
    with postgres_server() as server:
        rows = [_search_run(server.database("one"), trials, 1, None),
                _search_run(server.database("four"), trials, 4, None),
                _search_run(server.database("killed"), trials, 4, trials // 3)]
    base = rows[0]["seconds"]
    print(" workers  killed   wall s  speed-up  complete  evaluated  surplus  lost  failed  "
          "took part")
    for r in rows:
        print(f" {r['workers']:7d}  {r['killed']:6d}  {r['seconds']:7.1f}  "
              f"{base / r['seconds']:7.2f}×  {r['complete']:8d}  {r['evaluated']:9d}  "
              f"{r['surplus']:7d}  {r['lost']:4d}  {r['failed']:6d}  {r['took_part']:9d}")
    print(f"evaluated: trials whose metrics were recorded (= complete: none twice); lost: the "
          f"killed worker's running trial, marked and never rerun; surplus: asked past the "
          f"budget, never evaluated. {os.cpu_count()} cores bound the speed-up of 4 worker "
          "processes\n")


# ---- 2. elastic two-node training ------------------------------------------------------------
def elastic_part() -> None:
    os.environ["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"  # docs/scaling.md: why
    from tests.train.test_elastic import _node, _port, uninterrupted

    print("2. elastic training: 2 torchrun nodes (c10d), QAT + distillation, rank 1 killed at "
          "step 25 of 44")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        args = [d / "ckpt", d / "e.pt", "--resume", "--kill-at", 25, "--kill-rank", 1, "--qat",
                "--kd"]
        port, t0 = _port(), time.perf_counter()
        nodes = [_node(i, port, args) for i in range(2)]
        codes = []
        for n in nodes:
            n.communicate(timeout=600)
            codes.append(n.returncode)
        seconds = time.perf_counter() - t0
        done = all(c == 0 for c in codes) and (d / "e.pt").exists()
        e = torch.load(d / "e.pt", weights_only=True) if done else {}
        t1 = time.perf_counter()
        one = uninterrupted(d / "one.pt", [d / "one", d / "one.pt", "--qat", "--kd"])
        one_s = time.perf_counter() - t1
    print(" run                   completed  resumed at  steps  top-1 %  wall s")
    print(f" 2 nodes, 1 killed     {'yes' if done else 'NO':>9}  {e.get('resumed_at', '-'):>10}  "
          f"{e.get('step', '-'):>5}  {e.get('accuracy', float('nan')):7.2f}  {seconds:6.1f}")
    print(f" 2 ranks, not killed   {'yes':>9}  {'-':>10}  {one['step']:>5}  "
          f"{one['accuracy']:7.2f}  {one_s:6.1f}")
    if done:
        print(f"top-1 difference {e['accuracy'] - one['accuracy']:+.2f} pt (tolerance ±1.0)\n")


# ---- 3. FSDP vs DDP memory --------------------------------------------------------------------
def fsdp_worker(width: int, parallel: str, recompute: bool = False) -> None:
    """Under torchrun: QAT-train the MLP a few steps; rank 0 prints the peak RSS of the ranks."""
    import torch.distributed as dist
    from torch import nn
    from torch.utils.data import TensorDataset

    import slimkit as sk
    from slimkit.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    layers = [nn.Linear(64, width), nn.ReLU()]
    for _ in range(4):
        layers += [nn.Linear(width, width), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(width, 10))
    x = torch.randn(64, 64)
    data = TensorDataset(x, torch.randint(0, 10, (64,)))
    model = sk.prepare_qat(model, sk.QuantConfig.w8a8(), x[:8])
    # the float original the record keeps (distillation's default teacher) would stay whole
    # on every rank: without a teacher, let it go — what is measured is the training state
    sk.record_of(model).original = None
    cfg = TrainConfig(epochs=1, batch_size=16, lr=1e-4, progress=False, parallel=parallel,
                      recompute=recompute)
    with Trainer(model, cfg, data) as t:
        # the peak while training: the whole model each rank built before sharding it is not
        # counted (a model too large for one worker is built on the meta device instead)
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak RSS
        t.fit()
        peak = torch.tensor([_vm_hwm_gib()])
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)  # the larger rank
        if t.rank == 0:
            params = sum(p.numel() for p in model.parameters())  # a DTensor: the whole size
            print(f"RESULT {peak.item():.3f} {params}", flush=True)


def _vm_hwm_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20  # kB → GiB
    raise RuntimeError("no VmHWM in /proc/self/status")


def _fsdp_run(width: int, parallel: str, recompute: bool = False) -> tuple[float, int] | None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           __file__, "--fsdp-worker", str(width), parallel, str(int(recompute))]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT")]
    if r.returncode or not line:
        print(f"   width {width} {parallel}: failed ({r.returncode}): {r.stderr[-400:]}")
        return None
    peak, params = line[-1].split()[1:]
    return float(peak), int(params)


MODES = {"ddp": ("ddp", False), "fsdp": ("fsdp", False), "fsdp+recompute": ("fsdp", True)}


def fsdp_part(limits: list[float]) -> None:
    print("3. QAT (w8a8, AdamW) of an MLP with 4 W×W layers on 2 ranks: peak RSS per worker "
          "while training (GiB); recompute: TrainConfig.recompute, activation checkpointing")
    print("  width   params (M)   fp32 MB       ddp      fsdp   fsdp+recompute   fsdp/ddp   "
          "fsdp+recompute/ddp")
    peaks: dict[str, list[tuple[int, int, float]]] = {m: [] for m in MODES}
    for w in WIDTHS:
        got = {m: _fsdp_run(w, *how) for m, how in MODES.items()}
        if any(v is None for v in got.values()):
            continue
        params, ddp = got["ddp"][1], got["ddp"][0]
        print(f"  {w:5d}   {params / 1e6:10.1f}   {params * 4 / 2**20:7.0f}   {ddp:7.2f}   "
              f"{got['fsdp'][0]:7.2f}   {got['fsdp+recompute'][0]:14.2f}   "
              f"{got['fsdp'][0] / ddp:8.2f}   {got['fsdp+recompute'][0] / ddp:18.2f}")
        for m, (peak, _) in got.items():
            peaks[m].append((w, params, peak))
    print("\n  limit per worker   largest model:  " + "".join(f"{m:>22}" for m in MODES))
    for limit in limits:
        cells = []
        for m in MODES:
            fit = [(w, n) for w, n, peak in peaks[m] if peak <= limit]
            cells.append(f"{fit[-1][0]:5d} ({fit[-1][1] / 1e6:5.1f} M)" if fit else "none")
        print(f"  {limit:8.1f} GiB                   " + "".join(f"{c:>22}" for c in cells))
    print()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--limits-gib", default="2,3,4,6,8")
    ap.add_argument("--parts", default="search,elastic,fsdp")
    ap.add_argument("--fsdp-worker", nargs=3, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.fsdp_worker:
        return fsdp_worker(int(a.fsdp_worker[0]), a.fsdp_worker[1], a.fsdp_worker[2] == "1")
    print(machine_line(2), "\n")
    parts = a.parts.split(",")
    if "search" in parts:
        search_part(a.trials)
    if "elastic" in parts:
        elastic_part()
    if "fsdp" in parts:
        fsdp_part([float(v) for v in a.limits_gib.split(",")])


if __name__ == "__main__":
    main()
