"""Quantization: numerics (qscheme, nonuniform, packing), observers, modules, flows."""

from slimkit.quant import codec as _codec  # noqa: F401 — registers the plan's manifest codec
from slimkit.quant.api import quantize
from slimkit.quant.config import QATOptions, QuantConfig, Rule
from slimkit.quant.flows import convert, prepare_qat
from slimkit.quant.granularity import PerChannel, PerGroup, PerTensor, PerToken
from slimkit.quant.metrics import sqnr
from slimkit.quant.nonuniform import NonUniformScheme
from slimkit.quant.observers import MSE, Entropy, MinMax, MovingAverage, Percentile
from slimkit.quant.plan import QuantPlan, resolve_plan
from slimkit.quant.preset import QuantPreset
from slimkit.quant.qscheme import QScheme, dequantize, fake_quantize, quantize_tensor
from slimkit.quant.spec import ActQuant, LayerQuant, WeightQuant

__all__ = [
    "MSE", "ActQuant", "Entropy", "LayerQuant", "MinMax", "MovingAverage", "NonUniformScheme",
    "PerChannel", "PerGroup", "PerTensor", "PerToken", "Percentile", "QATOptions", "QScheme",
    "QuantConfig", "QuantPlan", "QuantPreset", "Rule", "WeightQuant", "convert", "dequantize",
    "fake_quantize",
    "prepare_qat", "quantize", "quantize_tensor", "resolve_plan", "sqnr",
]
