"""Pruning: importance, granularity, structured surgery, schedules, regularizers.

(Named `pruning` so the package never shadows the `sk.prune` verb.)
"""

from slimkit.pruning.api import PruneError, prune
from slimkit.pruning.config import PruneConfig, PruneRule
from slimkit.pruning.report import PruneReport
from slimkit.pruning.unstructured import sparsity

__all__ = ["PruneConfig", "PruneError", "PruneReport", "PruneRule", "prune",
           "sparsity"]
