"""The data contract: how slimkit reads a batch, whatever stage reads it.

A batch is one of

    x                       a tensor: the model's one input, no target
    (x,)                    the same, as a 1-tuple (TensorDataset of inputs only)
    (x, y)                  input and target (a DataLoader over (input, target) pairs)
    ((x1, x2, …), y)        several positional inputs and a target; ((x1, x2),) without one
    {"k": t, …}             keyword inputs matched to forward's parameters; 'labels' or 'y'
                            is the target

(lists count as tuples: DataLoader collates tuples into lists). Calibration, training,
evaluation, export and the benchmark read batches only through `split` / `call_model`, so a
batch works everywhere or is refused before any work, with its structure named.

*Example inputs* (what `sk.export`, `sk.prune` and tracing take) are the model's arguments
alone: a tensor, a tuple of positional tensors, or a dict of keyword tensors.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from slimkit.errors import CalibrationError

ACCEPTED = ("x, (x,), (x, y), ((x1, x2, …), y) or a dict of tensors (keys = forward's "
            "parameters; 'labels' or 'y' is the target)")
TARGET_KEYS = ("labels", "y")


class BatchError(CalibrationError):
    """A batch is not one of the forms of the data contract, or does not fit the model."""


def describe(obj: Any, depth: int = 0) -> str:
    """A batch's structure in one line: tuple(Tensor[64, 1, 8, 8] float32, Tensor[64] int64)."""
    if isinstance(obj, torch.Tensor):
        return f"Tensor{list(obj.shape)} {str(obj.dtype).removeprefix('torch.')}"
    if depth > 2:
        return type(obj).__name__
    if isinstance(obj, dict):
        return "dict(" + ", ".join(f"{k}: {describe(v, depth + 1)}" for k, v in obj.items()) + ")"
    if isinstance(obj, tuple | list):
        return (f"{type(obj).__name__}("
                + ", ".join(describe(v, depth + 1) for v in obj) + ")")
    return type(obj).__name__


def _refuse(batch: Any, why: str) -> BatchError:
    return BatchError(f"batch {describe(batch)}: {why}; a batch must be {ACCEPTED}")


def _tensors(obj: Any) -> bool:
    """A tensor, or a non-empty tuple / list of tensors (several positional inputs)."""
    if isinstance(obj, torch.Tensor):
        return True
    return isinstance(obj, tuple | list) and bool(obj) and all(
        isinstance(t, torch.Tensor) for t in obj)


def split(batch: Any) -> tuple[Any, Any]:
    """(inputs, target) of a batch; target None when it has none. Inputs are a tensor, a
    tuple of positional tensors or a dict of keyword tensors."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, dict):
        if not batch:
            raise _refuse(batch, "the dict is empty")
        target_keys = [k for k in TARGET_KEYS if k in batch]
        if len(target_keys) > 1:
            raise _refuse(batch, f"it holds both {target_keys}: give one target")
        inputs = {k: v for k, v in batch.items() if k not in TARGET_KEYS}
        if not inputs:
            raise _refuse(batch, "it holds a target but no inputs")
        return inputs, batch[target_keys[0]] if target_keys else None
    if isinstance(batch, tuple | list):
        if len(batch) not in (1, 2):
            raise _refuse(batch, f"a {type(batch).__name__} of {len(batch)} items is "
                                 "ambiguous (which are inputs, which the target?)")
        x = batch[0]
        if isinstance(x, tuple | list):
            x = tuple(x)
        if not (_tensors(x) or (isinstance(x, dict) and x)):
            raise _refuse(batch, f"its first item ({describe(batch[0])}) is not the model's "
                                 "inputs")
        return x, (batch[1] if len(batch) == 2 else None)
    raise _refuse(batch, f"a {type(batch).__name__} is not a batch")


def inputs_of(batch: Any) -> Any:
    return split(batch)[0]


def target_of(batch: Any) -> Any:
    return split(batch)[1]


@contextmanager
def evaluating(model: nn.Module, grad: bool = False) -> Iterator[nn.Module]:
    """The model in eval mode (BN on running statistics, no dropout), without autograd unless
    `grad`; its training mode restored afterwards, whatever happens inside."""
    was = model.training
    model.eval()
    try:
        with torch.set_grad_enabled(grad):
            yield model
    finally:
        model.train(was)


def observe(model: nn.Module, examples: list, hooks: list) -> None:
    """Run each example inputs through the model (eval mode, no autograd) so the forward
    `hooks` already registered see them; the hooks are removed afterwards, whatever happens."""
    try:
        with evaluating(model):
            for x in examples:
                model(*as_args(x))
    finally:
        for h in hooks:
            h.remove()


def call(model: nn.Module, inputs: Any) -> Any:
    """model(inputs): a tensor as the one argument, a tuple as positional arguments, a dict
    as keyword arguments."""
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, tuple | list):
        return model(*inputs)
    return model(inputs)


def call_model(model: nn.Module, batch: Any) -> Any:
    """The model's output on a batch of any accepted form (its target, if any, unused)."""
    return call(model, inputs_of(batch))


def join(inputs: Any, target: Any) -> Any:
    """The batch (inputs, target) stands for, in the contract's form: a dict keeps its keys."""
    if target is None:
        return inputs
    if isinstance(inputs, dict):
        return {**inputs, "labels": target}
    return (inputs, target)


def rows(inputs: Any) -> int:
    """Samples in the inputs: the first dimension of the first tensor."""
    first = (next(iter(inputs.values())) if isinstance(inputs, dict)
             else inputs[0] if isinstance(inputs, tuple | list) else inputs)
    return len(first)


def take(inputs: Any, n: int | None) -> Any:
    """The first n samples of the inputs (all of them for n=None)."""
    if n is None:
        return inputs
    if isinstance(inputs, dict):
        return {k: v[:n] for k, v in inputs.items()}
    if isinstance(inputs, tuple | list):
        return tuple(t[:n] for t in inputs)
    return inputs[:n]


def as_args(inputs: Any, model: nn.Module | None = None) -> tuple:
    """Positional arguments for tracing and export. A dict is ordered by forward's
    parameters when the model is given (the order the exported graph's inputs take)."""
    if isinstance(inputs, dict):
        if model is None:
            return tuple(inputs.values())
        order = list(_parameters(model))
        keys = sorted(inputs, key=lambda k: order.index(k) if k in order else len(order))
        return tuple(inputs[k] for k in keys)
    if isinstance(inputs, tuple | list):
        return tuple(inputs)
    return (inputs,)


def _parameters(model: nn.Module) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):  # a builtin or C forward: nothing to check against
        return {}


def check(model: nn.Module, batch: Any, where: str = "batch") -> None:
    """Refuse, before any work, a batch whose inputs do not fit `model.forward`: a count of
    positional inputs it cannot take, or dict keys that are none of its parameters."""
    inputs, _ = split(batch)
    params = _parameters(model)
    if not params:
        return
    kinds = [p.kind for p in params.values()]
    if isinstance(inputs, dict):
        if inspect.Parameter.VAR_KEYWORD in kinds:
            return
        unknown = [k for k in inputs if k not in params]
        if unknown:
            raise BatchError(f"{where} {describe(batch)}: keys {unknown} are not parameters of "
                             f"{type(model).__name__}.forward{_signature(params)}; a dict "
                             "batch's keys must name forward's parameters ('labels' or 'y' is "
                             "the target)")
        return
    given = len(inputs) if isinstance(inputs, tuple) else 1
    positional = [p for p in params.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(p.default is p.empty for p in positional)
    takes_more = inspect.Parameter.VAR_POSITIONAL in kinds
    if given < required or (given > len(positional) and not takes_more):
        read = ("is read as (inputs, target)" if isinstance(batch, tuple | list)
                and len(batch) == 2 and not isinstance(batch[0], tuple | list) else
                f"gives {given} input(s)")
        fix = (f"give (({', '.join(list(params)[:required])}), target) or "
               f"(({', '.join(list(params)[:required])}),)" if required > 1 else
               "give (x, target), (x,) or x")
        raise BatchError(f"{where} {describe(batch)} {read}, but {type(model).__name__}."
                         f"forward{_signature(params)} takes {required} required input(s): "
                         f"{fix}")


def _signature(params: dict[str, inspect.Parameter]) -> str:
    return "(" + ", ".join(str(p) for p in params.values()) + ")"


__all__ = ["ACCEPTED", "BatchError", "as_args", "call", "call_model", "check", "describe",
           "evaluating", "observe",
           "inputs_of", "join", "rows", "split", "take", "target_of"]
