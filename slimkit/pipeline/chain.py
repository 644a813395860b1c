"""Deferred stages. A stage with `defer: true` (a prune followed by a distill that recovers
its loss) is not judged on its own: the chain of it and the stages up to the next one that is
not deferred is judged where it ends, from the worse of the original's metric and the
chain's input, against the sum of its stages' per-stage budgets (and the overall budget).

When the chain does not fit, the deferred stages' amounts are halved and the chain runs
again (at most `bisect_steps` times); when no amount fits, the deferred stages roll back and
the chain's last stage runs on its own. The amount being tried is kept on disk, so a killed
run resumes the same trial.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from slimkit.atomic import write_atomic
from slimkit.pipeline.context import Context
from slimkit.pipeline.execute import advance, plain, run_or_load, stage_dir
from slimkit.pipeline.guard import own_budget
from slimkit.pipeline.recipe import Recipe

log = logging.getLogger("slimkit.pipeline")


def deferred(stage: tuple) -> bool:
    return bool(getattr(stage[1], "defer", False))


def chain_end(stages: list, i: int) -> int:
    """The index of the stage that judges the chain starting at i (i itself if not deferred;
    recipe.check_order makes sure a deferred stage is followed by one that is not)."""
    j = i
    while j < len(stages) - 1 and deferred(stages[j]):
        j += 1
    return j


def run_chain(ctx: Context, out: Path, recipe: Recipe, stages: list, i: int, j: int, model,
              stale: bool):
    """(model after the chain, the results of stages i..j, stale)."""
    start = (ctx.input_metric, ctx.cache.input_macs, len(ctx.kept))
    reference = ctx.metric.worse(ctx.baseline, ctx.input_metric)
    budget = sum(own_budget(recipe.budget, cfg) for _, cfg in stages[i:j + 1])
    tries = max(stages[k][1].bisect_steps for k in range(i, j)) if stages[i:j] else 0
    state = _state_file(out, i)
    state.parent.mkdir(parents=True, exist_ok=True)
    fraction = _read_state(state, recipe.stage_key(j))
    while fraction >= 0.5 ** tries:  # 0.0: a run that rolled back before, resumed
        write_atomic(state, json.dumps({"key": recipe.stage_key(j), "fraction": fraction}))
        result, dones, stale = _trial(ctx, out, recipe, stages, i, j, model, stale, fraction,
                                      reference, budget)
        end = dones[-1]
        if not end["skipped"] and end["fits"] is not False:
            return result, dones, stale
        ctx.say(f"the deferred chain stages[{i}..{j}] does not fit its budget of {budget:g} "
                f"(from {reference:.4g}) with {fraction:.0%} of the deferred amount"
                + (f"; trying {fraction / 2:.0%}" if fraction / 2 >= 0.5 ** tries else ""))
        _restore(ctx, start)
        stale, fraction = True, fraction / 2
    write_atomic(state, json.dumps({"key": recipe.stage_key(j), "fraction": 0.0}))
    return _roll_back(ctx, out, recipe, stages, i, j, model, start)


def _trial(ctx, out, recipe, stages, i, j, model, stale, fraction, reference, budget):
    dones, tag = [], {"chain": {"start": i, "end": j, "fraction": fraction}}
    for k in range(i, j + 1):
        kind, cfg = stages[k]
        last = k == j
        if last:
            ctx.guard.judge_chain(reference, budget)
        else:
            ctx.guard.deferred = True
        stage = (kind, cfg if last else cfg.scaled(fraction))
        try:
            model, done, stale = run_or_load(ctx, out, recipe, k, stage, model, stale, tag)
        finally:
            ctx.guard.end_stage()
        dones.append(done)
    return model, dones, stale


def _roll_back(ctx, out, recipe, stages, i, j, model, start):
    """No amount fits: the deferred stages go back to their input; the last runs alone."""
    dones, tag = [], {"chain": {"start": i, "end": j, "fraction": 0.0}}
    for k in range(i, j):
        kind, cfg = stages[k]
        done = {"index": k, "kind": kind, "key": recipe.stage_key(k),
                "config": cfg.model_dump(), "skipped": True, "chosen": None, "fits": None,
                "deferred": True, "kept": f"rolled back: the chain stages[{i}..{j}] fits no "
                "amount tried", "input_metric": start[0], "metric": start[0], "drop": 0.0,
                "total_drop": ctx.metric.drop(ctx.baseline, start[0]), "macs": start[1],
                "params": None, "state_bytes": None, "attempts": [], "info": {}, "notes": [],
                "seconds": 0.0, "artifact_bytes": None, **tag}
        sd = stage_dir(out, k, kind)
        sd.mkdir(parents=True, exist_ok=True)
        write_atomic(sd / "result.json", json.dumps(done, indent=1, default=plain))
        advance(ctx, kind, done, model, k)
        dones.append(done)
    model, done, stale = run_or_load(ctx, out, recipe, j, stages[j], model, True, tag)
    return model, dones + [done], stale


def _restore(ctx: Context, start: tuple) -> None:
    ctx.input_metric, macs, kept = start
    ctx.cache.set_input(macs=macs)
    del ctx.kept[kept:]


def _state_file(out: Path, i: int) -> Path:
    return out / "stages" / f"chain-{i:02d}.json"


def _read_state(path: Path, key: str) -> float:
    """The amount a killed run was trying (1.0 for a new chain; 0.0: it rolled back)."""
    if path.is_file():
        state = json.loads(path.read_text())
        if state.get("key") == key:
            return float(state.get("fraction", 1.0))
    return 1.0
