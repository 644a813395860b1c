"""Neural architecture search: spaces, strategies through Optuna ask-and-tell on one storage,
proxy / supernet evaluators, latency-aware objectives, retrained results.

    from slimkit.search import SearchConfig, Constraint, run_search
    result = run_search(SearchConfig(strategy="evolution", n_trials=60,
                                     constraints=(Constraint("latency_ms", 0.8),)))

Importing this package loads Optuna; `import slimkit` does not.
"""

from slimkit.search.config import LatencyConfig, ProxyConfig, SearchConfig, SupernetConfig
from slimkit.search.evaluators import ProxyEvaluator, SearchData, kendall_tau, search_data
from slimkit.search.objectives import hypervolume, pareto_front
from slimkit.search.results import Candidate, SearchResult, TrialRecord
from slimkit.search.runner import run_search, search_worker
from slimkit.search.space import Choice, Constraint, Costs, SearchError, Space, model_costs
from slimkit.search.spaces import SPACES, get_space
from slimkit.search.strategies import STRATEGIES, EvolutionConfig, ReinforceConfig

__all__ = ["SPACES", "STRATEGIES", "Candidate", "Choice", "Constraint", "Costs",
           "EvolutionConfig", "LatencyConfig", "ProxyConfig", "ProxyEvaluator",
           "ReinforceConfig", "SearchConfig", "SearchData", "SearchError", "SearchResult",
           "Space", "SupernetConfig", "TrialRecord", "get_space", "hypervolume", "kendall_tau",
           "model_costs", "pareto_front", "run_search", "search_data", "search_worker"]
