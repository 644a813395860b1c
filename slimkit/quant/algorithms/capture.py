"""Collecting what flows into and out of one layer over calibration data, with hooks.

A hook that has what it needs stops the forward pass (an exception caught here), so reading
the input of layer l costs the model's prefix up to l, not a whole forward. Everything
captured is checked for NaN / inf: an algorithm fed non-finite activations says which layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from slimkit.errors import CalibrationError
from slimkit.quant.calibrate import call_model


class _Stop(Exception):  # noqa: N818 — control flow, never seen by users
    pass


def batches(calib: Iterable | None, max_batches: int | None, who: str) -> Iterator[Any]:
    if calib is None:
        raise CalibrationError(f"{who} needs calibration data: pass calib= (batches)")
    n = 0
    for n, b in enumerate(calib, start=1):
        if max_batches is not None and n > max_batches:
            return
        yield b
    if n == 0:
        raise CalibrationError(f"{who}: calib is empty; pass at least one batch")


def check_finite(t: torch.Tensor, where: str, who: str, batch: int) -> None:
    if t.is_floating_point() and not torch.isfinite(t).all():
        raise CalibrationError(f"{who}: non-finite values (NaN/inf) at {where} in calibration "
                               f"batch {batch}; calibration data and activations must be finite")


def first_tensor(args: tuple) -> torch.Tensor:
    return args[0]


@torch.no_grad()
def run_to(model: nn.Module, name: str, batch: Any, output: bool) -> torch.Tensor:
    """The input (output=False) or output of submodule `name` when `batch` runs, stopping
    the forward right there."""
    mod = model.get_submodule(name)
    got: list[torch.Tensor] = []

    def pre(_m, args):
        got.append(first_tensor(args).detach().clone())
        raise _Stop

    def post(_m, _args, out):
        got.append(out.detach().clone())  # clone: an inplace ReLU would overwrite it
        raise _Stop

    h = mod.register_forward_hook(post) if output else mod.register_forward_pre_hook(pre)
    try:
        call_model(model, batch)
    except _Stop:
        pass
    finally:
        h.remove()
    if not got:
        raise CalibrationError(f"layer '{name}' was not called by the model's forward")
    return got[0]


@torch.no_grad()
def observe_inputs(model: nn.Module, names: list[str], calib: Iterable | None,
                   fn: Callable[[str, torch.Tensor], None], who: str,
                   max_batches: int | None = None) -> int:
    """One pass over `calib`; fn(name, input) for every call of each named submodule."""
    state = {"batch": 0}

    def hook(name):
        def pre(_m, args):
            x = first_tensor(args)
            check_finite(x, f"the input of '{name}'", who, state["batch"])
            fn(name, x.detach())
        return pre

    handles = [model.get_submodule(n).register_forward_pre_hook(hook(n)) for n in names]
    try:
        for i, b in enumerate(batches(calib, max_batches, who)):
            state["batch"] = i
            call_model(model, b)
    finally:
        for h in handles:
            h.remove()
    return state["batch"] + 1


@torch.no_grad()
def execution_order(model: nn.Module, names: list[str], batch: Any) -> list[str]:
    """`names` in the order the forward first calls them (unused ones last, as given)."""
    seen: list[str] = []
    handles = [model.get_submodule(n).register_forward_pre_hook(
        lambda _m, _a, n=n: seen.append(n) if n not in seen else None) for n in names]
    try:
        call_model(model, batch)
    finally:
        for h in handles:
            h.remove()
    return seen + [n for n in names if n not in seen]


def layers_in_order(qmodel: nn.Module, layers: dict, calib, who: str, skip_reason,
                    skipped: list) -> Iterator[tuple[str, nn.Module]]:
    """(name, layer) of `layers` in the order the model runs them; a layer `skip_reason`
    names a reason for goes to `skipped` as (name, reason) instead."""
    first = next(iter(batches(calib, 1, who)))
    for name in execution_order(qmodel, list(layers), first):
        why = skip_reason(layers[name])
        if why is None:
            yield name, layers[name]
        else:
            skipped.append((name, why))
