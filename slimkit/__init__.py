"""slimkit: make trained PyTorch models smaller and faster for deployment, and prove it.

The public verbs live here; `import slimkit` loads torch and slimkit's own modules only.
"""

from slimkit.errors import CalibrationError, ConfigError, SlimkitError
from slimkit.quant import (
    MSE,
    ActQuant,
    Entropy,
    LayerQuant,
    MinMax,
    MovingAverage,
    NonUniformScheme,
    Percentile,
    PerChannel,
    PerGroup,
    PerTensor,
    PerToken,
    QATOptions,
    QScheme,
    QuantConfig,
    Rule,
    WeightQuant,
    convert,
    prepare_qat,
    quantize,
    resolve_plan,
    sqnr,
)

__version__ = "0.1.0"

__all__ = [
    "MSE", "ActQuant", "CalibrationError", "ConfigError", "Entropy", "LayerQuant", "MinMax",
    "MovingAverage", "NonUniformScheme", "PerChannel", "PerGroup", "PerTensor", "PerToken",
    "Percentile", "QATOptions", "QScheme", "QuantConfig", "Rule", "SlimkitError", "WeightQuant",
    "convert", "prepare_qat", "quantize", "resolve_plan", "sqnr",
]
