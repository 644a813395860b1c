"""Mixed precision: per-layer sensitivity, a pluggable cost, an exact multiple-choice
knapsack over the whole Pareto front, and the QuantConfig of a chosen point."""

from slimkit.quant.mixed_precision.auto import (
    MixedPrecisionResult,
    auto_config,
    candidates,
    config_from_choice,
    default_schemes,
)
from slimkit.quant.mixed_precision.costs import CostModel, SizeCost
from slimkit.quant.mixed_precision.plot import plot_pareto, plot_sensitivity
from slimkit.quant.mixed_precision.sensitivity import hutchinson_traces, sensitivity
from slimkit.quant.mixed_precision.solver import (
    BudgetError,
    Option,
    ParetoPoint,
    pareto_front,
    solve,
)
from slimkit.quant.mixed_precision.table import SensitivityRow, SensitivityTable

__all__ = [
    "BudgetError", "CostModel", "MixedPrecisionResult", "Option", "ParetoPoint",
    "SensitivityRow", "SensitivityTable", "SizeCost", "auto_config", "candidates",
    "config_from_choice", "default_schemes", "hutchinson_traces", "pareto_front",
    "plot_pareto", "plot_sensitivity", "sensitivity", "solve",
]
