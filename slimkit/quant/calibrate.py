"""Feeding batches to a model: calibration, with checks on what comes in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from slimkit.batch import call_model
from slimkit.errors import CalibrationError
from slimkit.progress import track


def _check_finite(batch: Any, index: int) -> None:
    tensors = (batch.values() if isinstance(batch, dict)
               else batch if isinstance(batch, (tuple, list)) else [batch])
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
            raise CalibrationError(f"calibration batch {index} holds NaN or inf; "
                                   "calibration data must be finite")


@torch.no_grad()
def calibrate(model: nn.Module, calib: Iterable | None, progress: bool = True,
              max_batches: int | None = None) -> int:
    """Run `calib` through the model in eval mode; returns the number of batches seen."""
    if calib is None:
        raise CalibrationError("this config quantizes activations statically: pass calib= "
                               "(an iterable of batches), or use QuantConfig.dynamic() / "
                               "weight_only() which need none")
    model.eval()
    n = 0
    total = max_batches if max_batches is not None else _len_or_none(calib)
    for batch in track(calib, "calibrating", total, None if progress else False):
        if max_batches is not None and n >= max_batches:
            break
        _check_finite(batch, n)
        call_model(model, batch)
        n += 1
    if n == 0:
        raise CalibrationError("calib is empty: it yielded no batch; pass at least one batch")
    return n


def _len_or_none(it: Iterable) -> int | None:
    try:
        return len(it)  # type: ignore[arg-type]
    except TypeError:
        return None
