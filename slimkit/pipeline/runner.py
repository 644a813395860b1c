"""Run a recipe: source model → stages in order → final artifact, report and plots.

    DIR/recipe.yaml   run.json   log.txt
    DIR/source/                  the original model (trained first when the recipe says so)
    DIR/stages/NN-kind/          key, checkpoints of its training, model/ (an artifact),
                                 result.json (written last: the stage is done)
    DIR/export/                  model.onnx, openvino/model.xml
    DIR/model/                   the final artifact (load), with model.onnx inside
    DIR/report.json  report.html

Resume: a stage whose key (everything it depends on: model, data, metric, budget, seed and the
stages up to it) matches its finished result is loaded, not re-run; an interrupted stage resumes
from its training checkpoints; a changed stage re-runs, and every stage after it.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from slimkit._version import __version__
from slimkit.artifact import load, save
from slimkit.atomic import write_atomic
from slimkit.deploy import ExportError
from slimkit.graph.modules import state_bytes
from slimkit.latency.machine import environment
from slimkit.pipeline.chain import chain_end, run_chain
from slimkit.pipeline.context import Context, Run, count_params
from slimkit.pipeline.execute import plain, run_or_load, size
from slimkit.pipeline.load import load_recipe
from slimkit.pipeline.recipe import Recipe, RecipeError
from slimkit.pipeline.registry import STAGES
from slimkit.pipeline.sources import (
    Data,
    build_data,
    build_metric,
    build_model,
    build_task,
)
from slimkit.pipeline.stage_benchmark import note_deployment
from slimkit.report import write_html
from slimkit.task import Task
from slimkit.train import TrainConfig, service

log = logging.getLogger("slimkit.pipeline")
RUN_FORMAT = "slimkit.run/1"


@dataclass(frozen=True)
class Sources:
    """What a recipe names, built once per run (before anything is written)."""

    recipe: Recipe
    stages: list
    model: nn.Module
    data: Data
    task: Task


def build(recipe_path) -> Sources:
    """Read the recipe and build its model, data and task; any of them bad → RecipeError."""
    recipe, stages = load_recipe(recipe_path)
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)  # the source model's initialisation is part of the recipe
    model = build_model(recipe.model)
    data = build_data(recipe.data, recipe.model, recipe.seed)
    return Sources(recipe, stages, model, data, build_task(recipe, data, model))


def context(src: Sources, model: nn.Module, progress: bool | None = None, *,
            measured: bool = True, run_dir: Path = Path("."), **options) -> Context:
    """A run's context around `model`; measured=False: no metric, no baseline (the plans
    of a source the recipe trains first need neither). options: Run's workers, storage,
    force."""
    metric = build_metric(src.task, src.data, model) if measured else None
    baseline = metric(model) if measured else float("nan")
    return Context(Run(src.recipe, src.stages, src.data, src.task, metric, model, baseline,
                       progress, run_dir=run_dir, **options))


def _train_source(src: Sources, progress, out: Path):
    """The source model trained as the recipe says (once: a rerun loads it)."""
    spec, target = src.recipe.model.train, out / "source"
    if (target / "model" / "manifest.json").is_file():
        return load(target / "model")
    cfg = TrainConfig(**spec.model_dump(), seed=src.recipe.seed, checkpoint_dir=target / "ckpt",
                      checkpoint_seconds=5, progress=progress is not False)
    service.train(src.model, cfg, src.data.train, task=src.task)  # every rank under torchrun
    save(src.model.eval(), target / "model")
    return src.model.eval()


# ---- compress -------------------------------------------------------------------------------
def compress(recipe_path, out, *, force: bool = False, progress: bool | None = None,
             workers: int = 1, storage: str | None = None) -> dict:
    """Run the recipe into `out`. A `search` stage runs its trials in `workers` processes on
    `storage` (a database URL other hosts join with the same recipe; default: SQLite in out);
    force also replaces a study another recipe left there."""
    out = Path(out)
    src = build(recipe_path)  # bad recipes, factories, data and tasks fail here …
    trains = src.recipe.model.train is not None
    options = {"workers": workers, "storage": storage, "force": force}
    plans(context(src, src.model, progress, measured=not trains, **options))  # … and plans
    _claim(out, src.recipe, force)
    handler = _log_to(out / "log.txt")
    try:
        model = _train_source(src, progress, out) if trains else src.model
        ctx = context(src, model, progress, run_dir=out, **options)
        (out / "recipe.yaml").write_text(Path(recipe_path).read_text())
        return _run(ctx, out, recipe_path)
    finally:
        logging.getLogger("slimkit").removeHandler(handler)
        handler.close()


def _run(ctx: Context, out: Path, recipe_path) -> dict:
    recipe, stages = ctx.recipe, ctx.run.stages
    t_run = time.perf_counter()
    log.info("source: %s %.4g", ctx.unit, ctx.baseline)
    model, results, stale, i = ctx.original, [], False, 0
    while i < len(stages):
        end = chain_end(stages, i)
        if end == i:
            model, done, stale = run_or_load(ctx, out, recipe, i, stages[i], model, stale)
            results.append(done)
        else:  # deferred stages: judged together where the chain ends
            model, dones, stale = run_chain(ctx, out, recipe, stages, i, end, model, stale)
            results += dones
        i = end + 1

    note_deployment(model, results)  # the fastest runtime goes into the artifact's record
    deploy_note = _save_final(model, out, ctx)
    report = _report(ctx, recipe_path, results, out, time.perf_counter() - t_run)
    report["final"]["onnx"] = deploy_note
    write_atomic(out / "report.json", json.dumps(report, indent=1, default=plain))

    write_html(report, out / "report.html")
    return report


def _save_final(model, out: Path, ctx: Context) -> str:
    """The final artifact, with model.onnx inside when the model exports (a w4a4 or
    non-uniform model has no QDQ form: the artifact alone then, and the report says why)."""
    try:
        with tempfile.TemporaryDirectory() as d:  # the export stage's file, if it made one
            save(model, out / "model", onnx_file=ctx.cache.onnx(model, Path(d) / "model.onnx"))
        return "model/model.onnx"
    except ExportError as e:
        log.info("final model has no ONNX form: %s", e)
        save(model, out / "model")
        return f"none: {e}"


def _claim(out: Path, recipe: Recipe, force: bool) -> None:
    """Make `out` this recipe's run directory, or refuse (another recipe's run, or not ours)."""
    run = out / "run.json"
    if run.is_file():
        owner = json.loads(run.read_text()).get("identity")
        if owner != recipe.identity():
            if not force:
                raise RecipeError(f"--out {out} holds a run of another recipe (its model, data "
                                  "or metric differ); pass --force to replace it")
            shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()) and not force:
        raise RecipeError(f"--out {out} exists and is not a slimkit run directory; pass "
                          "--force to use it anyway")
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(run, json.dumps({"format": RUN_FORMAT, "identity": recipe.identity(),
                                      "slimkit": __version__}))
    except OSError as e:
        raise RecipeError(f"--out {out} is not writable: {e}") from e


def _log_to(path: Path) -> logging.Handler:
    h = logging.FileHandler(path)
    h.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    lg = logging.getLogger("slimkit")
    lg.addHandler(h)
    lg.setLevel(logging.INFO)
    return h


def _report(ctx: Context, recipe_path, results: list[dict], out: Path, seconds: float) -> dict:
    final = results[-1] if results else None
    return {
        "format": "slimkit.report/1", "recipe": str(recipe_path), "machine": environment(
            ctx.recipe.threads),
        "metric": {"name": ctx.metric.name, "unit": ctx.unit,
                   "higher_is_better": ctx.metric.higher_is_better},
        "task": {"kind": ctx.task.kind, "loss": ctx.task.loss_name,
                 "reason": ctx.task.reason},
        "budget": ctx.recipe.budget.model_dump(),
        "source": {"metric": ctx.baseline, "params": count_params(ctx.original),
                   "macs": ctx.kept and _source_macs(ctx), "state_bytes": state_bytes(
                       ctx.original)},
        "stages": results,
        "final": {"metric": ctx.input_metric,
                  "total_drop": ctx.metric.drop(ctx.baseline, ctx.input_metric),
                  "artifact": "model", "artifact_bytes": size(out / "model"),
                  "stage": final["index"] if final else None},
        "seconds": seconds,
    }


def _source_macs(ctx: Context) -> int | None:
    return ctx.cache.macs(ctx.original)


# ---- check ----------------------------------------------------------------------------------
def check(recipe_path, progress: bool | None = False) -> str:
    """Validate the recipe and print each stage's plan, without training or writing."""
    src = build(recipe_path)
    ctx, model = context(src, src.model, progress), src.model
    trained = "" if src.recipe.model.train is None else " (before the recipe trains it)"
    lines = [f"source: {type(model).__name__}, {count_params(model):,} params, "
             f"{ctx.cache.macs(model) or 0:,} MACs, {ctx.unit} {ctx.baseline:.4g}{trained}",
             ctx.task.describe() + ("" if ctx.metric.higher_is_better else
                                    f"; lower {ctx.unit} is better")]
    return "\n".join(lines + plans(ctx))


def plans(ctx: Context) -> list[str]:
    """Each stage's plan, the model passed along as the stages would change its structure."""
    model, lines = ctx.original, []
    for i, (kind, cfg) in enumerate(ctx.run.stages):
        ctx.index = i
        plan = STAGES[kind].plan
        text, model = plan(ctx, model, cfg) if plan else ("(no plan)", model)
        lines.append(f"\nstages[{i}] {kind}, budget {ctx.guard.stage_budget(cfg):g} "
                     f"(overall {ctx.recipe.budget.max_drop:g})\n{text}")
    ctx.index = 0
    return lines
