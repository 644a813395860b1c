"""The `search` stage: neural architecture search (slimkit.search) as a recipe stage.

Every key of `slimkit.search.SearchConfig` is allowed (space, strategy, n_trials, objectives,
constraints, evaluator, proxy, retrain, top_k, storage, …); `space: prune` searches per-layer
pruning ratios of the stage's input model. The retrained top candidates are measured with the
recipe's metric; the best that fits the budget goes on (searched from scratch: it replaces the
model, and its artifact names the space and architecture to rebuild it).
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, model_validator
from torch import nn

from slimkit.errors import ConfigError
from slimkit.pipeline.context import Context, StageResult
from slimkit.pipeline.recipe import RecipeError
from slimkit.pipeline.registry import planner, stage
from slimkit.record import record_of
from slimkit.search import SearchConfig, run_search


class SearchStage(BaseModel):
    """Free-form here, validated by SearchConfig (errors name `search.<field>`)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    @model_validator(mode="after")
    def _valid(self):
        try:
            SearchConfig.from_dict(self.model_dump())
        except ConfigError as e:
            raise ValueError(str(e)) from None
        return self


@stage("search", SearchStage, trains=True)
def run_search_stage(ctx: Context, model: nn.Module, cfg: SearchStage) -> StageResult:
    if ctx.task.kind != "classification":
        raise RecipeError(f"stages[{ctx.index}].search: architecture search trains and "
                          f"scores candidates by cross-entropy; this run's task is "
                          f"{ctx.task.kind} (search supports classification)")
    sc = SearchConfig.from_dict({"seed": ctx.recipe.seed, **cfg.model_dump(),
                                 "run_dir": str(ctx.dir / "search")})
    t0 = time.perf_counter()
    result = run_search(sc, model=model if sc.space == "prune" else None,
                        workers=getattr(ctx, "workers", 1))
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


@planner("search")
def plan_search(ctx: Context, model: nn.Module, cfg: SearchStage):
    sc = SearchConfig.from_dict(cfg.model_dump())
    return (f"{sc.strategy} over space '{sc.space}', {sc.n_trials} trials, objectives "
            f"{list(sc.objectives)}, constraints {[str(c) for c in sc.constraints]}, "
            f"evaluator {sc.evaluator}; retrain top {sc.top_k}"), model
