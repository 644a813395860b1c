"""X^T X of a layer's weight inputs over calibration data (GPTQ's Hessian, AWQ's loss).

Rows are what one weight row multiplies: a Linear's input vectors (B·T, in); a Conv2d's
im2col patches (N·L, C·kh·kw), in the order of weight.reshape(out, -1). Accumulated batch by
batch (and in chunks within a batch), so memory is one (cols, cols) matrix per layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CHUNK_BYTES = 64 << 20  # im2col rows materialized at once


def unsupported(layer: nn.Module) -> str | None:
    """Why rows cannot be formed for this float layer, or None."""
    if isinstance(layer, nn.Linear):
        return None
    if isinstance(layer, nn.Conv2d):
        if layer.groups != 1:
            return f"grouped conv (groups={layer.groups}): one Hessian per group not built"
        if isinstance(layer.padding, str) or layer.padding_mode != "zeros":
            return "conv with string padding or non-zero padding_mode"
        return None
    return f"{type(layer).__name__} has no row form here (Linear and Conv2d only)"


def input_rows(layer: nn.Module, x: torch.Tensor):
    """Yield (rows, cols) chunks of the weight input x of `layer`."""
    if isinstance(layer, nn.Linear):
        rows = x.reshape(-1, x.shape[-1]).float()  # (B·T, in)
        step = max(1, CHUNK_BYTES // (4 * rows.shape[1]))
        for i in range(0, rows.shape[0], step):
            yield rows[i:i + step]
        return
    cols = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
    n_out = _conv_positions(layer, x.shape[-2:])
    per_image = max(1, CHUNK_BYTES // (4 * cols * n_out))
    for i in range(0, x.shape[0], per_image):
        p = F.unfold(x[i:i + per_image].float(), layer.kernel_size, layer.dilation,
                     layer.padding, layer.stride)  # (n, C·kh·kw, L)
        yield p.transpose(1, 2).reshape(-1, cols)


def _conv_positions(layer: nn.Conv2d, hw) -> int:
    out = 1
    for d in range(2):
        k = layer.dilation[d] * (layer.kernel_size[d] - 1) + 1
        out *= (hw[d] + 2 * layer.padding[d] - k) // layer.stride[d] + 1
    return max(out, 1)


class Gram:
    """Running Σ x x^T (cols, cols) and the number of rows and samples seen."""

    def __init__(self, cols: int) -> None:
        self.xtx = torch.zeros(cols, cols)
        self.abs_sum = torch.zeros(cols)
        self.rows = 0
        self.samples = 0

    def add(self, layer: nn.Module, x: torch.Tensor) -> None:
        self.samples += x.shape[0]
        for r in input_rows(layer, x):
            self.xtx.addmm_(r.t(), r)
            self.abs_sum += r.abs().sum(dim=0)
            self.rows += r.shape[0]

    def hessian(self) -> torch.Tensor:
        return self.xtx * (2.0 / max(self.rows, 1))  # H = 2 X^T X / n

    def mean_abs(self) -> torch.Tensor:
        return self.abs_sum / max(self.rows, 1)
