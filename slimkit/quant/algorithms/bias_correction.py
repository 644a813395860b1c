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
    set_bias,
    weight_input,
    wrapped_layers,
)
from slimkit.quant.algorithms.report import LayerResult
from slimkit.quant.calibrate import call_model


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
def mean_outputs(model: nn.Module, names: list[str], calib, max_batches: int | None = None,
                 ) -> dict[str, torch.Tensor]:
    """E[output] per output channel of each named layer of a model, in one pass, {name: (C,)}."""
    sums: dict[str, list] = {n: [None, 0] for n in names}

    def hook(name, dim):
        def post(_m, _a, y):
            s, n = _channel_mean(y, dim)
            acc = sums[name]
            acc[0], acc[1] = (s if acc[0] is None else acc[0] + s), acc[1] + n
        return post

    handles = [model.get_submodule(n).register_forward_hook(
        hook(n, channel_dim(model.get_submodule(n)))) for n in names]
    try:
        for b in batches(calib, max_batches, "bias correction"):
            call_model(model, b)
    finally:
        for h in handles:
            h.remove()
    return {n: (s / max(k, 1)).float() for n, (s, k) in sums.items()}


@torch.no_grad()
def quant_mean_output(qmodel: nn.Module, name: str, calib, max_batches: int | None = None,
                      ) -> torch.Tensor:
    """E[quantized output] per channel of layer `name` (before any output quantizer)."""
    layer = qmodel.get_submodule(name)
    total, rows = None, 0
    for i, b in enumerate(batches(calib, max_batches, "bias correction")):
        x = run_to(qmodel, name, b, output=False)
        check_finite(x, f"the input of '{name}'", "bias correction", i)
        s, n = _channel_mean(layer_output(layer, weight_input(layer, x), layer.weight),
                             channel_dim(layer))
        total, rows = (s if total is None else total + s), rows + n
    return (total / rows).float()


def mean_output_error(qmodel: nn.Module, reference: nn.Module, name: str, calib,
                      max_batches: int | None = None) -> torch.Tensor:
    """E[float output − quantized output] per output channel of layer `name`, (C,)."""
    ref = mean_outputs(reference, [name], calib, max_batches)[name]
    return ref - quant_mean_output(qmodel, name, calib, max_batches)


@register(BiasCorrection, "quantized", "bias_correction")
def _bias_correction(qmodel, cfg: BiasCorrection, calib, reference):
    layers = {m.name: m for m in wrapped_layers(qmodel)}
    first = next(iter(batches(calib, 1, "bias correction")))
    order = execution_order(qmodel, list(layers), first)
    # the float model does not change: its means for every layer in one pass
    ref_means = mean_outputs(reference, order, calib, cfg.max_batches)
    applied, skipped, added = [], [], []
    for name in order:
        layer = layers[name]
        if layer.packed is None and layer.weight_quantizer is None:
            skipped.append((name, "weight stays float: no weight error to correct"))
            continue
        err = ref_means[name] - quant_mean_output(qmodel, name, calib, cfg.max_batches)
        if layer.layer.bias is None:
            added.append(name)
        set_bias(layer, err)
        applied.append(LayerResult(name, f"bias += mean error (max |Δb| {err.abs().max():.3g})",
                                   {"max_abs_correction": float(err.abs().max()),
                                    "mean_abs_correction": float(err.abs().mean())}))
    return report_for("bias_correction", cfg, applied, skipped, structure={"added_bias": added})
