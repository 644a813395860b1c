"""Empirical bias correction (Nagel et al. 2019 §4.2; AIMET's empirical variant).

Quantized weights shift a layer's mean output: E[W_q x] ≠ E[W x]. Layer by layer, in the
order the forward runs them, the mean of (float output − quantized output) per output
channel over the calibration data is added to the bias — with the inputs the quantized model
(already corrected up to that layer) really produces, so each correction sees the errors of
all layers before it. On the calibration data the mean error per channel is then 0 at every
layer (later corrections do not move earlier layers' outputs). A layer without a bias gets
one (its state dict gains `layer.bias`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from slimkit.errors import ConfigError
from slimkit.quant.algorithms.api import AlgoConfig, register, report_for
from slimkit.quant.algorithms.capture import batches, check_finite, execution_order, run_to
from slimkit.quant.algorithms.common import (
    channel_dim,
    layer_output,
    quant_layers,
    set_bias,
    weight_input,
)
from slimkit.quant.algorithms.report import LayerResult


@dataclass(frozen=True)
class BiasCorrection(AlgoConfig):
    """max_batches: calibration batches used per layer (None: all)."""

    max_batches: int | None = None

    def __post_init__(self) -> None:
        if self.max_batches is not None and self.max_batches < 1:
            raise ConfigError(f"BiasCorrection.max_batches={self.max_batches} must be ≥ 1")


def _channel_mean(y: torch.Tensor, dim: int) -> tuple[torch.Tensor, int]:
    y = y.movedim(dim, -1)
    flat = y.reshape(-1, y.shape[-1]).double()  # (rows, C)
    return flat.sum(dim=0), flat.shape[0]


@torch.no_grad()
def mean_output_error(qmodel: nn.Module, reference: nn.Module, name: str, calib,
                      max_batches: int | None = None) -> torch.Tensor:
    """E[float output − quantized output] per output channel of layer `name`, (C,)."""
    layer = qmodel.get_submodule(name)
    dim = channel_dim(layer)
    total, rows = None, 0
    for i, b in enumerate(batches(calib, max_batches, "bias correction")):
        y_f = run_to(reference, name, b, output=True)
        x = run_to(qmodel, name, b, output=False)
        check_finite(x, f"the input of '{name}'", "bias correction", i)
        y_q = layer_output(layer, weight_input(layer, x), layer.weight())
        s, n = _channel_mean(y_f - y_q, dim)
        total, rows = (s if total is None else total + s), rows + n
    return (total / rows).float()


@register(BiasCorrection, "quantized", "bias_correction")
def _bias_correction(qmodel, cfg: BiasCorrection, calib, reference):
    layers = {m.name: m for m in quant_layers(qmodel)}
    first = next(iter(batches(calib, 1, "bias correction")))
    applied, skipped = [], []
    for name in execution_order(qmodel, list(layers), first):
        layer = layers[name]
        if layer.packed is None and layer.weight_quantizer is None:
            skipped.append((name, "weight stays float: no weight error to correct"))
            continue
        err = mean_output_error(qmodel, reference, name, calib, cfg.max_batches)
        set_bias(layer, err)
        applied.append(LayerResult(name, f"bias += mean error (max |Δb| {err.abs().max():.3g})",
                                   {"max_abs_correction": float(err.abs().max()),
                                    "mean_abs_correction": float(err.abs().mean())}))
    return report_for("bias_correction", cfg, applied, skipped)
