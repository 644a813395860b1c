"""The stage registry: one entry per stage type, with its typed config and how it runs
(stages.py imports the built-in ones, which register themselves here).

    @stage("prune", PruneStage)
    def run_prune(ctx, model, cfg) -> StageResult: ...

A new technique becomes a recipe stage by registering here (its config is a pydantic model:
the recipe is validated against it, errors name `stages[i].<type>.<field>`), plus a `plan`
for `slimkit check` and, where it changes what the model *is*, an order rule below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from torch import nn

from slimkit.pipeline.context import Context, StageResult


@dataclass(frozen=True)
class StageType:
    name: str
    config: type[BaseModel]
    run: Callable[[Context, nn.Module, Any], StageResult]
    plan: Callable[[Context, nn.Module, Any], tuple[str, nn.Module]] | None = None
    changes_model: bool = True  # export / benchmark measure it and pass it on unchanged
    trains: bool = False  # needs float (not converted-integer) weights to train


STAGES: dict[str, StageType] = {}


def stage(name: str, config: type[BaseModel], *, changes_model: bool = True,
          trains: bool = False):
    def register(fn):
        STAGES[name] = StageType(name, config, fn, None, changes_model, trains)
        return fn
    return register


def planner(name: str):
    """Register the `slimkit check` plan of a stage: what it would touch, without training."""
    def register(fn):
        s = STAGES[name]
        STAGES[name] = StageType(s.name, s.config, s.run, fn, s.changes_model, s.trains)
        return fn
    return register


# Stage kinds after which the weights are integer codes: nothing may train or cut them.
QUANTIZING = {"quantize", "mixed_precision"}


def check_order(stages: list[tuple[str, Any]], recipe) -> str | None:
    """Why this stage order cannot work, or None."""
    kinds = [k for k, _ in stages]
    for i, (kind, cfg) in enumerate(stages):
        if getattr(cfg, "defer", False):
            after = kinds[i + 1] if i + 1 < len(kinds) else None
            if after is None or not STAGES[after].changes_model:
                return (f"stages[{i}] ({kind}) has defer: true, so a later stage must recover "
                        f"its loss and be judged with it; "
                        + ("it is the last stage" if after is None else
                           f"stages[{i + 1}] ({after}) does not change the model")
                        + " — put a distill, prune or quantize stage right after it")
    done_q = None
    for i, k in enumerate(kinds):
        if k in QUANTIZING:
            if done_q is not None:
                return (f"stages[{i}] quantizes a model stages[{done_q}] already quantized; "
                        "use one quantize stage (mixed precision goes in its config)")
            done_q = i
        elif done_q is not None and (k == "prune" or STAGES[k].trains):
            return (f"stages[{i}] ({k}) comes after stages[{done_q}] (quantize): a quantized "
                    f"model holds integer weights that {k} cannot change; put {k} before "
                    "quantize (QAT distils through quantize: {qat: {kd: true}})")
    return None


