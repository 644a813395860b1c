"""The training loop: one file, top to bottom.

  for epoch:                              DistributedSampler(seed, epoch) → same order on resume
    for each micro-batch (skip done ones):
      forward under autocast (bf16 / fp16)  loss / grad_accum
      backward (no_sync until the last micro-batch of an optimizer step under DDP)
      every grad_accum micro-batches: unscale, clip, step, zero, schedule, callbacks,
                                       log, checkpoint (rank 0, atomic)
Runs unchanged under `torchrun --nproc_per_node=N` (gloo on CPU, NCCL on GPU); the global batch
is split across ranks, so 1 and N processes see the same optimizer steps. parallel='fsdp'
shards the model, gradients and optimizer state across ranks (train/shard.py) instead of
replicating them; torchrun --max-restarts restarts killed workers, which resume here from the
last checkpoint (docs/scaling.md).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from slimkit.batch import call, rows, split
from slimkit.callbacks import Callback
from slimkit.errors import ConfigError
from slimkit.progress import Bar
from slimkit.task import Task
from slimkit.train import checkpoint, shard
from slimkit.train.config import TrainConfig
from slimkit.train.guard import LossGuard, TrainingError, describe_loss
from slimkit.train.precision import warn_if_slow

log = logging.getLogger("slimkit.train")
# loss(model, inputs, target): inputs as the data contract splits a batch (batch.py)
LossFn = Callable[[nn.Module, object, object], torch.Tensor]


def cross_entropy(model: nn.Module, x, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(call(model, x), y)


class TaskLoss:
    """The task's training loss as a Trainer loss: loss(model, inputs, target)."""

    def __init__(self, task: Task | str) -> None:
        self.task = Task.of(task)
        if not self.task.labeled:
            raise ConfigError(f"task {self.task.kind} learns a reference model's outputs: "
                              "train with Distiller(teacher, task=...) as the loss")

    def __call__(self, model: nn.Module, x, y) -> torch.Tensor:
        return self.task.loss_value(call(model, x), y, x)

    def describe(self) -> str:
        return f"{self.task.kind}: {self.task.loss_name}"


_clock = time.monotonic  # checkpoint_seconds reads it (a test steps it by hand)

class Trainer:
    def __init__(self, model: nn.Module, config: TrainConfig, train_data: Dataset,
                 eval_data: Dataset | None = None, loss_fn: LossFn | None = None,
                 callbacks: Sequence[Callback] = (),
                 extra_parameters: Sequence[nn.Parameter] = (),
                 task: Task | str = "classification") -> None:
        """loss_fn(model, inputs, target); default: the task's training loss (cross-entropy
        for classification). extra_parameters train with the model (e.g. a Distiller's
        feature adapters)."""
        self.loss_fn = TaskLoss(task) if loss_fn is None else loss_fn
        self.cfg, self.callbacks = config, list(callbacks)
        self.rank, self.world, self.device, self._owns_group = _init_distributed()
        if config.batch_size % self.world:
            raise ConfigError(f"TrainConfig.batch_size={config.batch_size} must divide by the "
                              f"{self.world} ranks")
        if len(train_data) == 0:
            raise ConfigError("train_data is empty: the trainer needs at least one sample")
        torch.manual_seed(config.seed)
        self.model = model.to(self.device)
        self.sharded = self.world > 1 and config.parallel == "fsdp"
        self._skeleton = shard.skeleton(model) if self.sharded else None
        self.module = self._wrap(model)  # what runs forward: the model, or its DDP wrapper
        self.sampler = DistributedSampler(train_data, self.world, self.rank, shuffle=True,
                                          seed=config.seed)
        # a private generator: each epoch's iterator draws a base seed from it, and from the
        # global RNG otherwise — which would shift dropout masks after a resume
        self.loader = DataLoader(train_data, batch_size=config.batch_size // self.world,
                                 sampler=self.sampler,
                                 generator=torch.Generator().manual_seed(config.seed))
        self.eval_data = eval_data
        self.steps_per_epoch = -(-len(self.loader) // config.grad_accum)
        self.total_steps = config.epochs * self.steps_per_epoch
        self.extra_parameters = list(extra_parameters)
        self.optimizer = _optimizer(model, config, self.extra_parameters)
        self.scheduler = _scheduler(self.optimizer, config, self.total_steps)
        # fp16's narrow exponent underflows small gradients: scale the loss up, skip steps
        # whose gradients overflowed, and adapt the scale (on CUDA and, slowly, on CPU)
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=config.precision == "fp16")
        self.precision = config.precision  # a schedule (ProgressivePrecision) may change it
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        # the first steps watched: a loss that trains nothing is an error, not a result
        self.guard = LossGuard(self.loss_fn, check_finite=config.precision != "fp16")
        self._last_checkpoint = _clock()
        self.history: list[dict] = []

    def replace_model(self, model: nn.Module) -> None:
        """Train `model` from here on (a pruning schedule cut the old one): a fresh optimizer
        over its tensors, the LR schedule continuing where it was."""
        sched = self.scheduler.state_dict()
        if self.sharded:
            raise ConfigError("replacing the model mid-training (a pruning schedule) is not "
                              "supported with parallel='fsdp': prune first, then fine-tune "
                              "sharded, or use parallel='ddp'")
        self.model = model.to(self.device)
        self.module = self._wrap(model)
        self.optimizer = _optimizer(model, self.cfg, self.extra_parameters)
        self.scheduler = _scheduler(self.optimizer, self.cfg, self.total_steps)
        self.scheduler.load_state_dict(sched)
        for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_last_lr(),
                             strict=True):
            group["lr"] = lr

    def _wrap(self, model: nn.Module) -> nn.Module:
        if self.world == 1:
            return model
        if self.sharded:
            return shard.shard(model)  # in place: model is the sharded module
        return nn.parallel.DistributedDataParallel(model)  # broadcasts buffers too

    def consolidated(self) -> nn.Module | None:
        """The trained model as one plain module, to save or export: under parallel='fsdp'
        its shards gathered on rank 0 (None on the other ranks; every rank must call it);
        otherwise the model itself."""
        if not self.sharded:
            return self.model
        return shard.consolidate(self.model, self._skeleton)

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Leave the process group this trainer joined. Call it (or use `with Trainer(...)`)
        before a DDP process exits: a gloo group still alive at interpreter shutdown can
        abort the process (SIGABRT) while its worker threads release tensors."""
        if self._owns_group and dist.is_initialized():
            dist.barrier()  # no rank tears its sockets down while another still talks
            dist.destroy_process_group()
        self._owns_group = False

    # ---- the loop ------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> list[dict]:
        cfg = self.cfg
        state = self._read_checkpoint() if resume else None
        if state is not None:  # counters first: callbacks may reshape the model for this epoch
            self.step, self.epoch, self.batch_in_epoch = (state["step"], state["epoch"],
                                                          state["batch_in_epoch"])
        for cb in self.callbacks:
            cb.on_train_start(self)
        if state is not None:
            self._load_states(state)
        bar = Bar("training", self.total_steps, None if (cfg.progress and self.rank == 0)
                  else False, completed=self.step)
        try:
            with shard.recomputing(self.model, cfg.recompute):
                while self.epoch < cfg.epochs:
                    self._epoch(bar)
        finally:
            bar.close()
        self.sync_buffers()
        if cfg.checkpoint_dir is not None:
            self.save_checkpoint()
        for cb in self.callbacks:
            cb.on_train_end(self)
        self.model.eval()
        return self.history

    def _epoch(self, bar: Bar) -> None:
        """One epoch: train (skipping micro-batches a resumed run already did), eval, hooks."""
        cfg = self.cfg
        self.sampler.set_epoch(self.epoch)  # the epoch's order depends on (seed, epoch) only
        self.module.train()
        t0, seen, loss = time.perf_counter(), 0, float("nan")
        for i, batch in enumerate(self.loader):
            if i < self.batch_in_epoch:
                continue  # resumed mid-epoch: these micro-batches were already trained
            x, y = split(batch)  # the data contract: (inputs, target), target None if absent
            last_micro = (i + 1) % cfg.grad_accum == 0 or i + 1 == len(self.loader)
            loss = self._forward_backward(_to(x, self.device), _to(y, self.device), last_micro)
            self.batch_in_epoch, seen = i + 1, seen + rows(x) * self.world
            if not last_micro:
                continue
            self.guard.after_backward(self.step, loss, self._trainable())
            self._optimizer_step()
            thr = seen / (time.perf_counter() - t0)
            self._log(loss, thr)
            bar.update(1, loss=f"{loss:.4f}", samples_s=f"{thr:.0f}")
            if self._checkpoint_due():
                self.save_checkpoint()
        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        if cfg.eval_every_epoch and self.eval_data is not None:
            acc = self.evaluate()
            self.history.append({"step": self.step, "epoch": self.epoch, "eval_top1": acc})
            bar.update(0, loss=f"{loss:.4f}", eval_top1=f"{acc:.2f}")
            if self.rank == 0:
                log.info("epoch %d eval top-1 %.2f%%", self.epoch, acc)
        for cb in self.callbacks:
            cb.on_epoch_end(self)

    def _forward_backward(self, x, y, last_micro: bool) -> float:
        if self.sharded:  # FSDP2: reduce-scatter the gradients only on the step's last one
            self.module.set_requires_gradient_sync(last_micro)
            self.sync_buffers()  # as DDP does before each forward: one set of BN / observers
            sync = nullcontext()
        else:
            sync = nullcontext() if last_micro or self.world == 1 else self.module.no_sync()
        with sync:
            with self._autocast():
                loss = self.loss_fn(self.module, x, y)  # x: (B/world, ...), loss: ()
            if not loss.requires_grad:
                raise TrainingError(f"training loss ({describe_loss(self.loss_fn)}) does not "
                                    "depend on the model's parameters: nothing is trained")
            self.scaler.scale(loss / self.cfg.grad_accum).backward()
        return loss.item()

    def _optimizer_step(self) -> None:
        if self.world > 1:  # DDP averages the model's gradients; these live outside it
            for p in self.extra_parameters:
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= self.world
        if self.cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            if self.sharded:  # sharded (DTensor) and plain gradients do not mix in one norm
                nn.utils.clip_grad_norm_(list(self.model.parameters()), self.cfg.grad_clip)
                if self.extra_parameters:
                    nn.utils.clip_grad_norm_(self.extra_parameters, self.cfg.grad_clip)
            else:
                nn.utils.clip_grad_norm_([*self.model.parameters(), *self.extra_parameters],
                                         self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        for cb in self.callbacks:
            cb.on_step_end(self)

    def _trainable(self) -> list[torch.Tensor]:
        return [p for p in (*self.model.parameters(), *self.extra_parameters)
                if p.requires_grad]

    @property
    def precision(self) -> str:
        """The autocast precision of the next steps: 'fp32', 'bf16' or 'fp16'."""
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        # the config's, or a schedule's (ProgressivePrecision) later: slow here is said loudly
        if value != getattr(self, "_precision", None) and self.rank == 0:
            warn_if_slow(value, self.device, stacklevel=4)
        self._precision = value

    def _autocast(self):
        if self.precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _log(self, loss: float, throughput: float) -> None:
        rec = {"step": self.step, "epoch": self.epoch, "loss": loss,
               "lr": self.scheduler.get_last_lr()[0], "samples_per_s": throughput}
        self.history.append(rec)
        if self.rank == 0 and self.cfg.log_every and self.step % self.cfg.log_every == 0:
            log.info("step %(step)d epoch %(epoch)d loss %(loss).4f lr %(lr).2e "
                     "%(samples_per_s).0f samples/s", rec)

    # ---- evaluation ----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, data: Dataset | None = None, batch_size: int = 256) -> float:
        """Top-1 accuracy (%) of the model on `data` (default: eval_data), every rank alike."""
        data = data if data is not None else self.eval_data
        if data is None or len(data) == 0:
            raise ConfigError("evaluate() needs a non-empty dataset (eval_data)")
        self.model.eval()
        correct = 0
        for batch in DataLoader(data, batch_size=batch_size):
            x, y = split(batch)
            with self._autocast():
                out = call(self.model, _to(x, self.device))
                correct += (out.argmax(1) == y.to(self.device)).sum()
        return 100.0 * int(correct) / len(data)

    # ---- checkpoints ---------------------------------------------------------------------
    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                **self._counters()}

    def _counters(self) -> dict:
        """Everything but the model and optimizer (a sharded checkpoint's trainer.pt)."""
        return {"scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "rng": torch.get_rng_state(), "world": self.world,
                # parameters trained beside the model (a Distiller's feature adapters); their
                # optimizer moments are in "optimizer" already
                "extra": [p.detach().clone() for p in self.extra_parameters]}

    def sync_buffers(self) -> None:
        """Give every rank rank 0's buffers (BN statistics, quantization observers, masks).
        DDP broadcasts them only before each forward, so after the last step every rank
        would otherwise keep the ranges its own batches produced."""
        if self.world > 1:
            for b in self.model.buffers():
                dist.broadcast(b, src=0)

    def _checkpoint_due(self) -> bool:
        cfg = self.cfg
        if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
            return True
        if not cfg.checkpoint_seconds:
            return False
        due = _clock() - self._last_checkpoint >= cfg.checkpoint_seconds
        if self.world > 1:  # rank 0's clock decides: every rank must join save_checkpoint
            flag = torch.tensor([int(due)], device=self.device)  # NCCL wants it on the GPU
            dist.broadcast(flag, src=0)
            due = bool(flag.item())
        return due

    def save_checkpoint(self) -> None:
        self._last_checkpoint = _clock()
        self.sync_buffers()
        directory = Path(self.cfg.checkpoint_dir)
        if self.sharded:
            shard.save(self.model, self.extra_parameters, self.optimizer, self._counters(),
                       directory, self.step)
            if self.rank == 0:
                checkpoint.prune(directory)
        elif self.rank == 0:
            checkpoint.write(self.state(), directory, self.step)
        if self.world > 1:
            dist.barrier()

    def _read_checkpoint(self) -> dict | None:
        if self.cfg.checkpoint_dir is None:
            raise ConfigError("resume=True needs TrainConfig.checkpoint_dir")
        path = checkpoint.latest(self.cfg.checkpoint_dir)
        if path is None:
            return None  # nothing saved yet: a fresh start
        log.info("resuming from %s", path)
        if checkpoint.is_sharded(path):  # model and optimizer: loaded in _load_states
            return {**shard.read_meta(path), "sharded": path}
        if self.sharded:
            raise ConfigError(f"checkpoint {path} holds a whole model (written with "
                              "parallel='ddp' or one process); parallel='fsdp' resumes only "
                              "from sharded checkpoints: resume it with parallel='ddp'")
        return checkpoint.read(path)

    def _restore(self) -> None:
        """Load the latest checkpoint into this trainer (model, optimizer, RNG, counters)."""
        s = self._read_checkpoint()
        if s is not None:
            self._load_states(s)

    def _load_states(self, s: dict) -> None:
        if s.get("world", self.world) != self.world and self.rank == 0:
            log.warning("resuming a checkpoint of %d ranks with %d: the model and optimizer "
                        "are whole again, but the rest of epoch %d sees a different sample "
                        "order", s["world"], self.world, s["epoch"] + 1)
        if "sharded" in s:  # DCP reshards to this run's world (or loads whole tensors)
            shard.load(self.model, self.extra_parameters, self.optimizer, s["sharded"])
        else:
            self.model.load_state_dict(s["model"])
        extra = s.get("extra", [])
        if [tuple(t.shape) for t in extra] != [tuple(p.shape) for p in self.extra_parameters]:
            raise ConfigError(
                f"the checkpoint holds {len(extra)} extra parameter(s) of shapes "
                f"{[tuple(t.shape) for t in extra]}, this trainer "
                f"{[tuple(p.shape) for p in self.extra_parameters]}: build the Distiller's "
                "adapters (distiller.trainable(...)) the same way before resuming")
        with torch.no_grad():
            for p, t in zip(self.extra_parameters, extra, strict=True):
                p.copy_(t)
        if "sharded" not in s:
            self.optimizer.load_state_dict(s["optimizer"])
        self.scheduler.load_state_dict(s["scheduler"])
        self.scaler.load_state_dict(s["scaler"])
        self.step, self.epoch, self.batch_in_epoch = s["step"], s["epoch"], s["batch_in_epoch"]
        torch.set_rng_state(s["rng"])


def _to(x, device):
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    if isinstance(x, tuple | list):
        return tuple(_to(v, device) for v in x)
    return x.to(device) if isinstance(x, torch.Tensor) else x


_MODE: list[bool | None] = [None]  # distributed_mode's setting; None: torchrun's environment


@contextmanager
def distributed_mode(on: bool | None) -> Iterator[None]:
    """Trainers built inside: False, one-process whatever the environment says (rank 0 of a
    program whose other ranks wait for jobs, train/service.py); True, on the process group
    already joined; None, as torchrun's environment says (the default)."""
    before, _MODE[0] = _MODE[0], on
    try:
        yield
    finally:
        _MODE[0] = before


def _init_distributed() -> tuple[int, int, torch.device, bool]:
    """(rank, world, device, joined); joins the process group torchrun describes in the
    environment — `joined` says this call created it, so close() should destroy it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if _MODE[0] is False:
        world = 1
    elif _MODE[0] is True:
        world = dist.get_world_size()
    cuda = torch.cuda.is_available()
    if world == 1:
        return 0, 1, torch.device("cuda" if cuda else "cpu"), False
    joined = world > 1 and not dist.is_initialized()
    if joined:
        warn_shared_store()
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local), joined
    return rank, world, torch.device("cpu"), joined


def warn_shared_store() -> None:
    """torchrun's workers share the rendezvous' TCP store by default; after a restart a worker
    can read the previous attempt's addresses there and never connect (PyTorch issue 135712:
    'Connection refused' or a hang). Without the sharing every attempt has a fresh store."""
    restarts = int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0") or 0)
    if restarts and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and \
            os.environ.get("RANK") == "0":
        warnings.warn("torchrun --max-restarts with the rendezvous store shared by the workers "
                      "(the default): a restarted job can fail to connect or hang; set "
                      "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in torchrun's environment "
                      "(docs/scaling.md)", RuntimeWarning, stacklevel=3)


def _optimizer(model: nn.Module, cfg: TrainConfig, extra: list) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad] + extra
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total: int):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total,
                                                   pct_start=0.15)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
