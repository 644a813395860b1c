"""QuantPreset: a quantization named the way a recipe names it — a preset, its bits and
observer, layers kept float, advanced PTQ steps — as one typed config (slimkit.config).
`sk.quantize(model, QuantPreset(preset="weight_only", bits=4, group_size=128,
algorithms=[{"gptq": {}}]), calib)` and the recipe's `quantize` stage (which adds its own
training and guard fields) read the same fields, declared here once."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from slimkit.config import Config
from slimkit.errors import ConfigError
from slimkit.quant.algorithms import algorithm_from_dict  # the package: all registered
from slimkit.quant.config import QuantConfig
from slimkit.quant.observers import OBSERVER_NAMES

Preset = Literal["w8a8", "w4a8", "w4a4", "dynamic", "weight_only", "nonuniform"]


class QuantPreset(Config):
    """A preset QuantConfig, refined."""

    preset: Preset = "w8a8"
    """w8a8 (int8 weights per channel, uint8 activations, static), w4a8, w4a4, dynamic
    (activations quantized at run time), weight_only, nonuniform (a codebook per layer)."""
    bits: int = Field(8, ge=1, le=16)
    """Weight bits of weight_only, dynamic and nonuniform."""
    group_size: int | None = Field(None, ge=1)
    """weight_only: weights quantized per group of this many inputs (None: per channel)."""
    kind: Literal["pow2", "kmeans", "binary", "ternary"] = "kmeans"
    """nonuniform: the codebook."""
    observer: Literal["minmax", "ema", "percentile", "mse", "entropy"] = "minmax"
    """How ranges are observed: min-max, moving average, percentile, MSE-optimal, entropy
    (KL, TensorRT-style)."""
    signed_acts: bool = False
    """w8a8 / w4a8: int8 activations instead of uint8."""
    activations: Literal["per_token", "per_tensor"] = "per_token"
    """dynamic: int8 per token (row), or uint8 per tensor (ONNX Runtime's fused kernel)."""
    target: str = "auto"
    """The CPU whose integer kernels the numerics must be exact on: auto (this one), portable,
    x86-avx2, x86-vnni, x86-amx, arm64 (slimkit.target)."""
    skip: tuple[str, ...] = ()
    """Layer name patterns kept float."""
    algorithms: tuple[dict, ...] = ()
    """Advanced PTQ, in order: [{cle: {}}, {smoothquant: {}}, {awq: {}}, {gptq: {}},
    {adaround: {iterations: 1000}}, {bias_correction: {}}] — float-stage methods first."""

    @field_validator("algorithms")
    @classmethod
    def _steps(cls, steps):
        for j, step in enumerate(steps):
            try:
                algorithm_from_dict(step)
            except ConfigError as e:
                raise ValueError(f"algorithms[{j}]: {e}") from None
        return steps

    @model_validator(mode="after")
    def _consistent(self):
        if self.activations != "per_token" and self.preset != "dynamic":
            raise ValueError("activations chooses the granularity of preset: dynamic; "
                             f"{self.preset} calibrates its activations")
        return self

    def base(self) -> QuantConfig:
        """The preset alone."""
        obs = OBSERVER_NAMES[self.observer]()
        return {"w8a8": lambda: QuantConfig.w8a8(obs, self.signed_acts),
                "w4a8": lambda: QuantConfig.w4a8(obs, self.signed_acts),
                "w4a4": lambda: QuantConfig.w4a4(obs),
                "dynamic": lambda: QuantConfig.dynamic(self.bits, self.activations),
                "weight_only": lambda: QuantConfig.weight_only(self.bits, self.group_size, obs),
                "nonuniform": lambda: QuantConfig.nonuniform(self.kind, self.bits),
                }[self.preset]()

    def refine(self, qc: QuantConfig) -> QuantConfig:
        """`qc` with this preset's skipped layers and algorithms."""
        for pattern in self.skip:
            qc = qc.skip(pattern)
        return qc.with_algorithms(*self.algorithms) if self.algorithms else qc

    def config(self) -> QuantConfig:
        return self.refine(self.base())


__all__ = ["Preset", "QuantPreset"]
