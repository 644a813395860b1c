"""Training jobs shared by the ranks of a torchrun job, for programs that are not training
loops top to bottom (the `slimkit compress` pipeline: calibration, export, benchmarks and the
report run once, its training stages on every rank).

Rank 0 runs the program inside `local_only()`: every Trainer there is a one-process trainer,
except the jobs it hands out with `train(...)`: the Trainer's arguments go to every rank
(pickled through the process group), all ranks build the same Trainer and train it together
(DDP or FSDP), and rank 0's model is the trained one. The other ranks run `serve()` until rank
0 calls `stop()`.

    result = on_ranks(run_the_program)   # rank 0: its result; the other ranks: None

(on_ranks does the rest: join torchrun's group, rank 0 runs the program inside local_only() —
its Trainers are local, its train(...) jobs run on every rank — and stop()s the others, which
serve() meanwhile.)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch
import torch.distributed as dist

from slimkit.train import checkpoint
from slimkit.train.guard import TrainingError
from slimkit.train.trainer import Trainer, distributed_mode, warn_shared_store

T = TypeVar("T")


def on_ranks(program: Callable[[], T]) -> T | None:
    """Run `program` once, its training jobs on every rank of torchrun's job: rank 0 returns
    its result, the others None. Without torchrun (WORLD_SIZE unset or 1): program()."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return program()
    warn_shared_store()
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        if dist.get_rank() != 0:
            serve()
            return None
        _SERVED[0] = True
        try:
            with local_only():
                return program()
        finally:
            stop()
            _SERVED[0] = False
    finally:
        dist.destroy_process_group()


_SERVED = [False]  # on_ranks sets it on rank 0 while the other ranks serve


def active() -> bool:
    """Whether this process is rank 0 of a group whose other ranks serve jobs (on_ranks)."""
    return _SERVED[0]


@contextlib.contextmanager
def local_only() -> Iterator[None]:
    """Trainers built inside are one-process trainers (the other ranks are not in them)."""
    with distributed_mode(False):
        yield


def train(model, config, data, resume: bool = True, **kwargs) -> Trainer:
    """Fit a Trainer(model, config, data, **kwargs) on every rank (rank 0 hands it out), or in
    this process alone when no ranks serve. Returns rank 0's trainer, closed after fit."""
    job = {"model": model, "config": config, "data": data, "resume": resume, "kwargs": kwargs,
           "checkpoint": _latest(config) if resume else None}
    if active():
        dist.broadcast_object_list([job], src=0)
    return _fit(job, distributed=active())


def serve() -> None:
    """Ranks ≥ 1: train every job rank 0 hands out, until it says stop."""
    while True:
        box = [None]
        dist.broadcast_object_list(box, src=0)
        if box[0] is None:
            return
        job = box[0]
        if job["resume"] and _latest(job["config"]) != job["checkpoint"]:
            raise TrainingError(
                f"rank {dist.get_rank()}: rank 0 resumes from checkpoint {job['checkpoint']} "
                f"in {job['config'].checkpoint_dir}, this rank finds "
                f"{_latest(job['config'])}: the run directory must be one every node sees "
                "(a shared file system)")
        _fit(job, distributed=True)


def stop() -> None:
    """Rank 0: release the serving ranks (call it even when the program failed)."""
    if active():
        dist.broadcast_object_list([None], src=0)


def _latest(config) -> str | None:
    if config.checkpoint_dir is None:
        return None
    found = checkpoint.latest(config.checkpoint_dir)
    return found.name if found else None


def _fit(job: dict, distributed: bool) -> Trainer:
    with distributed_mode(distributed), Trainer(job["model"], job["config"], job["data"],
                                                **job["kwargs"]) as t:
        t.fit(resume=job["resume"])
    return t
