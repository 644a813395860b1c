"""The `search` stage: neural architecture search (slimkit.search) as a recipe stage.

Every key of `slimkit.search.SearchConfig` is allowed (space, strategy, n_trials, objectives,
constraints, evaluator, proxy, retrain, top_k, storage, …); `space: prune` searches per-layer
pruning ratios of the stage's input model. The retrained top candidates are measured with the
recipe's metric; the best that fits the budget goes on (searched from scratch: it replaces the
model, and its artifact names the space and architecture to rebuild it).
"""

from __future__ import annotations

import time

from torch import nn

from slimkit.pipeline.context import Context, StageResult
from slimkit.pipeline.recipe import RecipeError
from slimkit.pipeline.registry import planner, stage
from slimkit.record import record_of
from slimkit.search import SearchConfig, SearchError, run_search
from slimkit.search.storage import open_storage


class SearchStage(SearchConfig):
    """Every SearchConfig field (the run directory is the stage's; the seed, the recipe's
    unless given)."""


@stage("search", SearchStage, trains=True)
def run_search_stage(ctx: Context, model: nn.Module, cfg: SearchStage) -> StageResult:
    if ctx.task.kind != "classification":
        raise RecipeError(f"stages[{ctx.index}].search: architecture search trains and "
                          f"scores candidates by cross-entropy; this run's task is "
                          f"{ctx.task.kind} (search supports classification)")
    sc = _config(ctx, cfg)
    t0 = time.perf_counter()
    result = run_search(sc, model=model if sc.space == "prune" else None,
                        workers=ctx.run.workers, owner=ctx.recipe.identity(),
                        replace=ctx.run.force)
    if result.latency:
        ctx.notes.append(result.latency)
    attempts, models = [], []
    for c in result.candidates:
        if sc.space != "prune":
            record_of(c.model).source = {"factory": "slimkit.search.spaces:build_candidate",
                                         "kwargs": {"space": sc.space, "arch": c.arch,
                                                    "options": sc.space_options}}
        a = ctx.measure(c.model, f"candidate {c.rank} (trial {c.trial})", cfg, t0,
                        note=", ".join(f"{k}={v}" for k, v in c.arch.items()))
        attempts.append(a)
        models.append(c.model)
        t0 = time.perf_counter()
    info = {"search": result.to_dict(), "curve": result.search_curve(),
            "pareto": result.pareto_points()}
    fitting = [i for i, a in enumerate(attempts) if a.fits]
    if not fitting:
        return StageResult(model, attempts, "skipped: no searched candidate fits the budget",
                           True, info)
    best = min(fitting, key=lambda i: attempts[i].total_drop)
    a = attempts[best]
    return StageResult(models[best], attempts, f"{a.label}: the best that fits the budget",
                       False, info, a)


def _config(ctx: Context, cfg: SearchStage) -> SearchConfig:
    """The stage's search: its run directory; the seed, the recipe's unless given; the storage,
    the command line's (--storage) over the recipe's."""
    seed = cfg.seed if "seed" in cfg.model_fields_set else ctx.recipe.seed
    return cfg.replace(run_dir=ctx.dir / "search", seed=seed, storage=_storage(ctx, cfg))


def _storage(ctx: Context, cfg: SearchStage) -> str | None:
    return ctx.run.storage or cfg.storage


@planner("search")
def plan_search(ctx: Context, model: nn.Module, cfg: SearchStage):
    storage = _storage(ctx, cfg)
    if storage is not None:  # unreachable or without its driver: say so before any work
        try:
            open_storage(cfg.replace(storage=storage, run_dir=None))
        except SearchError as e:
            raise RecipeError(f"stages[{ctx.index}].search: {e}") from None
    return (f"{cfg.strategy} over space '{cfg.space}', {cfg.n_trials} trials, objectives "
            f"{list(cfg.objectives)}, constraints {[str(c) for c in cfg.constraints]}, "
            f"evaluator {cfg.evaluator}; retrain top {cfg.top_k}"), model
