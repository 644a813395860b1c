"""Sharded training (TrainConfig.parallel='fsdp'): PyTorch's FSDP2 `fully_shard`, and sharded
checkpoints through torch.distributed.checkpoint (DCP).

Under DDP every rank holds the whole model, its gradients and the optimizer's moments (AdamW:
4× the parameters, before activations). FSDP2 keeps 1/world of each parameter per rank and
gathers a layer's weights only for its forward and backward, so a model whose training state
exceeds one worker trains on several.

A sharded checkpoint is a directory `step-00001234/`: every rank writes its shards (DCP), rank
0 the trainer's counters, scheduler and RNG (`trainer.pt`). It is written under a temporary
name and renamed by rank 0 once every rank has finished, so a kill mid-write leaves the
previous checkpoint as the latest. DCP reshards on load: a restart with another world size
reads it.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from slimkit.errors import ConfigError

TRAINER_FILE = "trainer.pt"
# torch.distributed.checkpoint and fsdp load on first use: they cost 0.6 s at import, and
# most runs never shard


def shard(model: nn.Module) -> nn.Module:
    """fully_shard every child that holds parameters (containers: their children), then the
    root: each unit's weights are gathered just for its own forward / backward. In place."""
    from torch.distributed.fsdp import fully_shard

    for unit in _units(model):
        fully_shard(unit)
    fully_shard(model)
    return model


@contextlib.contextmanager
def recomputing(model: nn.Module, on: bool = True) -> Iterator[None]:
    """Activation checkpointing on the same units while the block runs (fit): each unit's
    forward runs again during its backward instead of keeping what it saved (activations, and
    QAT's fake-quantized weights — a whole weight per layer, unsharded). Module names and the
    model object are unchanged; afterwards the units' forward is their own again."""
    from torch.utils.checkpoint import checkpoint

    units = _units(model) if on else []
    if on and not units:  # nothing would be recomputed: say so rather than train as before
        raise ConfigError(f"recompute=True: {type(model).__name__} has no child module that "
                          "holds parameters, so there is no unit to recompute; leave it off")
    for unit in units:
        def again(*args, _forward=unit.forward, _unit=unit, **kwargs):
            if not torch.is_grad_enabled():  # evaluation: nothing would be saved anyway
                return _forward(*args, **kwargs)
            return checkpoint(_forward, *args, use_reentrant=False,
                              context_fn=lambda: _replay(_unit), **kwargs)

        unit.forward = again  # an instance attribute, removed below
    try:
        yield
    finally:
        for unit in units:
            del unit.forward


STATE_NUMEL = 1 << 16  # buffers up to this size are state a forward may change


def _replay(unit: nn.Module):
    """checkpoint's context pair: the recomputation sees the buffers as the forward saw them
    (BN statistics, QAT observers and step counters before that forward) and leaves them as
    the forward left them — a recomputed forward neither updates them twice nor computes
    other scales than the original. By name: an observer replaces its tensors, not only their
    values."""
    slots = [(m, n) for m in unit.modules() for n, b in m._buffers.items()
             if b is not None and b.numel() <= STATE_NUMEL]
    before: list[torch.Tensor] = []

    def snapshot() -> list[torch.Tensor]:
        return [m._buffers[n].detach().clone() for m, n in slots]

    def put(values: list[torch.Tensor]) -> None:
        for (m, n), v in zip(slots, values, strict=True):
            m._buffers[n] = v

    @contextlib.contextmanager
    def forward():
        before[:] = snapshot()
        yield

    @contextlib.contextmanager
    def recompute():
        after = snapshot()
        put([b.clone() for b in before])
        try:
            yield
        finally:
            put(after)

    return forward(), recompute()


def _units(model: nn.Module) -> list[nn.Module]:
    out = []
    for child in model.children():
        if not any(True for _ in child.parameters()):
            continue
        if isinstance(child, nn.Sequential | nn.ModuleList | nn.ModuleDict):
            out += _units(child)
        else:
            out.append(child)
    return out


def skeleton(model: nn.Module) -> nn.Module:
    """A copy of the model's structure without storage (meta tensors), to consolidate into.
    Its tensors are made on the meta device directly (a deepcopy memo), so the copy never
    holds a second set of weights in memory."""
    memo: dict = {}
    for t in (*model.parameters(), *model.buffers()):
        empty = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(empty, t.requires_grad) if isinstance(t, nn.Parameter) \
            else empty
    return copy.deepcopy(model, memo)


def consolidate(model: nn.Module, empty: nn.Module) -> nn.Module | None:
    """The whole trained model as a plain module on rank 0 (None on the others). Collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True,
                                                                cpu_offload=True))
    if dist.get_rank() != 0:
        return None
    out = empty.to_empty(device="cpu")
    out.load_state_dict(full)
    return out.eval()


class _Trained(nn.Module):
    """The model and the parameters trained beside it (a Distiller's adapters) as one module:
    DCP's state-dict helpers name every tensor the optimizer holds by a module path."""

    def __init__(self, model: nn.Module, extra) -> None:
        super().__init__()
        self.model, self.extra = model, nn.ParameterList(extra)  # the same tensors, no copy


def save(model: nn.Module, extra, optimizer, meta: dict, directory: Path, step: int) -> Path:
    """Write a sharded checkpoint `directory/step-XXXXXXXX/` (collective)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    final = directory / f"step-{step:08d}"
    tmp = directory / f".step-{step:08d}.tmp"
    if dist.get_rank() == 0:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)  # a killed earlier attempt's leftovers
    dist.barrier()
    model_sd, optim_sd = get_state_dict(_Trained(model, extra), optimizer)
    dcp.save({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=str(tmp))
    if dist.get_rank() == 0:
        torch.save(meta, tmp / TRAINER_FILE)
        _fsync_dir(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    dist.barrier()
    return final


def load(model: nn.Module, extra, optimizer, path: Path) -> None:
    """Load a sharded checkpoint's model, extra parameters and optimizer into this run's (any
    world size; collective when distributed)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    trained = _Trained(model, extra)
    model_sd, optim_sd = get_state_dict(trained, optimizer)
    state = {"model": model_sd, "optimizer": optim_sd}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(trained, optimizer, model_state_dict=state["model"],
                   optim_state_dict=state["optimizer"])


def read_meta(path: Path) -> dict:
    return torch.load(path / TRAINER_FILE, map_location="cpu", weights_only=True)


def _fsync_dir(path: Path) -> None:
    for f in path.iterdir():
        with open(f, "rb+") as fh:
            os.fsync(fh.fileno())
