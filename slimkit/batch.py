"""How slimkit feeds a batch to a model, whatever its shape — one convention for every layer."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from slimkit.errors import CalibrationError


def call_model(model: nn.Module, batch: Any) -> Any:
    """A tensor → model(t); a dict → model(**d); a tuple/list → model(batch[0]) (the
    (inputs, labels) convention of DataLoaders)."""
    if isinstance(batch, torch.Tensor):
        return model(batch)
    if isinstance(batch, dict):
        return model(**batch)
    if isinstance(batch, tuple | list) and batch:
        return model(batch[0])
    raise CalibrationError(f"a batch must be a Tensor, a dict or an (inputs, ...) tuple, "
                           f"not {type(batch).__name__}")
