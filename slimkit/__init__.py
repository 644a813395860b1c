"""slimkit: make trained PyTorch models smaller and faster for deployment, and prove it.

The public verbs live here; `import slimkit` loads torch and slimkit's own modules only.
"""

from slimkit._version import __version__
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
    QuantPreset,
    Rule,
    WeightQuant,
    convert,
    prepare_qat,
    quantize,
    resolve_plan,
    sqnr,
)
from slimkit.record import describe, record_of
from slimkit.task import Task

# Verbs that need onnx / onnxruntime load on first use, so `import slimkit` stays light.
_LAZY = {
    "export": "slimkit.deploy", "check_parity": "slimkit.deploy", "session": "slimkit.deploy",
    "ExportError": "slimkit.deploy", "benchmark": "slimkit.bench",
    "save": "slimkit.artifact", "load": "slimkit.artifact",
    "ArtifactError": "slimkit.artifact", "read_manifest": "slimkit.artifact",
    "prune": "slimkit.pruning", "PruneConfig": "slimkit.pruning",
    "PruneRule": "slimkit.pruning", "PruneError": "slimkit.pruning",
    # architecture search loads Optuna: `sk.run_search(sk.SearchConfig(...))`
    "run_search": "slimkit.search", "SearchConfig": "slimkit.search",
    "SearchError": "slimkit.search",
}


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    # subpackages as attributes (sk.sparse.…) without importing them first
    if name in ("distill", "deploy", "train", "pruning", "sparse", "search"):
        return importlib.import_module(f"slimkit.{name}")
    raise AttributeError(f"module 'slimkit' has no attribute {name!r}")

__all__ = [
    "__version__",
    "MSE", "ActQuant", "CalibrationError", "ConfigError", "Entropy", "LayerQuant", "MinMax",
    "MovingAverage", "NonUniformScheme", "PerChannel", "PerGroup", "PerTensor", "PerToken",
    "Percentile", "QATOptions", "QScheme", "QuantConfig", "QuantPreset", "Rule", "SlimkitError",
    "WeightQuant",
    "convert", "prepare_qat", "quantize", "resolve_plan", "sqnr",
    "export", "check_parity", "session", "ExportError", "benchmark", "save", "load",
    "ArtifactError", "read_manifest", "describe", "record_of", "Task",
    "prune", "PruneConfig", "PruneRule", "PruneError",
    "run_search", "SearchConfig", "SearchError",
]
