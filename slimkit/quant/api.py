"""sk.quantize: the one post-training verb — a config in, the quantized model out.

    q = sk.quantize(model, sk.QuantConfig.w8a8(), calib=loader)                   # static PTQ
    q = sk.quantize(model, sk.QuantConfig.weight_only(4, 128)
                    .with_algorithms(qa.AWQ(), qa.GPTQ(act_order=True)), calib=loader)

A config that names algorithms runs them around the calibration (algorithms.api.ptq: the
float-stage ones before it, the quantized-stage ones after); what each did is in the
model's record (`sk.record_of(q).report`, `sk.describe(q)`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from torch import nn

from slimkit.quant import flows
from slimkit.quant.algorithms.api import ptq
from slimkit.quant.config import QuantConfig
from slimkit.quant.preset import QuantPreset
from slimkit.target import Target


def quantize(model: nn.Module, config: QuantConfig | QuantPreset, calib: Iterable | None = None,
             *, inplace: bool = False, progress: bool = True, max_batches: int | None = None,
             target: str | Target | None = "auto") -> nn.Module:
    """Post-training quantization (flows.quantize), with the config's algorithms around it.
    `config`: a QuantConfig, or a QuantPreset (the recipe's spelling; its target applies)."""
    if isinstance(config, QuantPreset):
        config, target = config.config(), config.target
    if not config.algorithms:
        return flows.quantize(model, config, calib, inplace=inplace, progress=progress,
                              max_batches=max_batches, target=target)
    plain = dataclasses.replace(config, algorithms=())
    return ptq(model, plain, calib, config.algorithms, target=target)


__all__ = ["quantize"]
