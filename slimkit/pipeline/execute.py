"""One stage of a run: loaded when its finished result still matches its key, else run into
its directory (key, checkpoints, model/, result.json written last)."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import torch

from slimkit.artifact import load, save
from slimkit.atomic import write_atomic
from slimkit.graph.modules import state_bytes
from slimkit.pipeline.context import Context, StageResult, count_params
from slimkit.pipeline.recipe import Recipe
from slimkit.pipeline.registry import STAGES

log = logging.getLogger("slimkit.pipeline")


def stage_dir(out: Path, i: int, kind: str) -> Path:
    return out / "stages" / f"{i:02d}-{kind}"


def run_or_load(ctx: Context, out: Path, recipe: Recipe, i: int, stage: tuple, model,
                stale: bool, extra: dict | None = None):
    """(model after stage i, its result dict, stale): a stage re-runs when it or any stage
    before it did (`stale`); `extra` must match a loaded result's (a deferred chain's
    amount), else the stage runs again."""
    kind, cfg = stage
    sd, key = stage_dir(out, i, kind), recipe.stage_key(i)
    done = None if stale else finished(sd, key, extra)
    if done is None:
        stale = True  # this stage re-runs, and every one after it
        model, done = _run_stage(ctx, i, kind, cfg, model, sd, key, extra)
    else:
        log.info("stage %d (%s): finished earlier, loaded", i, kind)
        if STAGES[kind].changes_model and not done["skipped"]:
            model = load(sd / "model")
    advance(ctx, kind, done, model, i)
    return model, done, stale


def _run_stage(ctx: Context, i: int, kind: str, cfg, model, sd: Path, key: str,
               extra: dict | None):
    key_file = sd / "key"
    if sd.exists() and (not key_file.is_file() or key_file.read_text() != key):
        shutil.rmtree(sd)  # a changed stage: its checkpoints belong to another config
    sd.mkdir(parents=True, exist_ok=True)
    write_atomic(sd / "key", key)
    ctx.begin(i, sd)
    torch.manual_seed(ctx.recipe.seed + i)  # each stage's randomness is its own
    log.info("stage %d (%s): running", i, kind)
    t0 = time.perf_counter()
    res: StageResult = STAGES[kind].run(ctx, model, cfg)
    done = _result(ctx, i, kind, cfg, res, key, time.perf_counter() - t0)
    done.update(extra or {})
    if STAGES[kind].changes_model and not res.skipped:
        save(res.model, sd / "model")
        done["artifact_bytes"] = size(sd / "model")
    write_atomic(sd / "result.json", json.dumps(done, indent=1, default=plain))
    for ckpt in sd.glob("ckpt-*"):  # the stage is done: its training checkpoints are spent
        shutil.rmtree(ckpt, ignore_errors=True)
    log.info("stage %d (%s): %s", i, kind, res.kept)
    return res.model, done


def _result(ctx: Context, i, kind, cfg, res: StageResult, key, seconds) -> dict:
    changes = STAGES[kind].changes_model and not res.skipped
    metric = res.chosen.metric if (res.chosen and changes) else ctx.input_metric
    drop = ctx.metric.drop
    return {"index": i, "kind": kind, "key": key, "config": cfg.model_dump(),
            "kept": res.kept, "skipped": res.skipped, "input_metric": ctx.input_metric,
            "chosen": next((j for j, a in enumerate(res.attempts) if a is res.chosen), None),
            "fits": None if res.chosen is None else res.chosen.fits,
            "deferred": ctx.guard.deferred,
            "metric": metric, "drop": drop(ctx.input_metric, metric),
            "total_drop": drop(ctx.baseline, metric), "params": count_params(res.model),
            "macs": ctx.cache.macs(res.model) if changes else ctx.cache.input_macs,
            "state_bytes": state_bytes(res.model),
            "attempts": [a.to_dict() for a in res.attempts], "info": res.info,
            "notes": list(ctx.notes), "training": list(ctx.training),
            "seconds": seconds, "artifact_bytes": None}


def advance(ctx: Context, kind: str, done: dict, model, i: int) -> None:
    """What the next stage starts from."""
    changed = STAGES[kind].changes_model and not done["skipped"]
    ctx.advance(f"{i}:{kind}", done, model, changed)


def finished(sd: Path, key: str, extra: dict | None = None) -> dict | None:
    f = sd / "result.json"
    if not f.is_file():
        return None
    done = json.loads(f.read_text())
    if done.get("key") != key or any(done.get(k) != v for k, v in (extra or {}).items()):
        return None
    return done


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def plain(o):
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, tuple | set):
        return list(o)
    return float(o) if hasattr(o, "__float__") else str(o)
