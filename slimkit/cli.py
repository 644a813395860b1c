"""The `slimkit` command line."""

from __future__ import annotations

from pathlib import Path

import click

from slimkit.bench import Candidate, benchmark
from slimkit.errors import SlimkitError
from slimkit.latency.machine import machine_line
from slimkit.models import DigitsCNN
from slimkit.pipeline import check as check_recipe
from slimkit.pipeline import compress as compress_recipe
from slimkit.pipeline.inspect import inspect_model
from slimkit.pipeline.summary import summary
from slimkit.quant import QuantConfig, resolve_plan
from slimkit.report import rebuild
from slimkit.train import service


@click.group()
@click.version_option(package_name="slimkit")
def main() -> None:
    """slimkit: make trained PyTorch models smaller and faster, and prove it."""


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/digits-demo"),
              show_default=True, help="Run directory (a rerun resumes / reuses it).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def demo(ctx: click.Context, out: Path, quiet: bool) -> None:
    """The embedded default: the digits recipe (train → prune → distill → int8 QAT → ONNX
    Runtime / OpenVINO → benchmark) through `slimkit compress`."""
    from importlib.resources import files


    click.echo(machine_line(2))
    recipe = files("slimkit.examples") / "recipes" / "digits.yaml"
    ctx.invoke(compress, recipe=Path(str(recipe)), out=out, force=False, quiet=quiet)


@main.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--shape", required=True, help="Input shape, e.g. 1,3,224,224 (float32 input).")
@click.option("--runtime", type=click.Choice(["ort", "openvino"]), default="ort",
              show_default=True)
@click.option("--rounds", type=int, default=10, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None)
def bench(models: tuple[str, ...], shape: str, runtime: str, rounds: int, threads: int,
          json_out: Path | None) -> None:
    """Time ONNX models side by side on one random input; ratios against the first."""
    import torch


    try:
        dims = tuple(int(d) for d in shape.split(","))
    except ValueError as e:
        raise click.BadParameter(f"{shape!r} is not a comma-separated list of ints",
                                 param_hint="--shape") from e
    x = torch.randn(*dims)
    res = benchmark([Candidate(Path(m).name, m, runtime) for m in models], x, rounds=rounds,
                    threads=threads)
    click.echo(str(res))
    if json_out is not None:
        json_out.write_text(res.to_json())


@main.command()
@click.option("--preset", type=click.Choice(["w8a8", "w4a8", "w4", "w4g32", "dynamic"]),
              default="w8a8", show_default=True)
def plan(preset: str) -> None:
    """Print the quantization plan a preset resolves to on the demo model."""
    configs = {
        "w8a8": QuantConfig.w8a8, "w4a8": QuantConfig.w4a8,
        "w4": lambda: QuantConfig.weight_only(4), "w4g32": lambda: QuantConfig.weight_only(4, 32),
        "dynamic": QuantConfig.dynamic,
    }
    click.echo(str(resolve_plan(DigitsCNN(), configs[preset]())))


def _fail(e: Exception) -> None:
    """Bad input: one clear line on stderr, exit code 2 (as click does for bad options)."""
    click.echo(f"error: {e}", err=True)
    raise SystemExit(2)


@main.command()
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Run directory: the final artifact, exported files, report, log, stages.")
@click.option("--force", is_flag=True, help="Replace a run of another recipe in --out.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def compress(recipe: Path, out: Path, force: bool, quiet: bool) -> None:
    """Run RECIPE on its model: every stage under the accuracy budget, resumable."""
    _run_recipe(recipe, out, force, quiet)


def _run_recipe(recipe: Path, out: Path, force: bool, quiet: bool, **search) -> None:
    try:  # under torchrun: rank 0 runs the recipe, its training stages run on every rank
        report = service.on_ranks(lambda: compress_recipe(
            recipe, out, force=force, progress=False if quiet else None, **search))
        if report is None:
            return  # a serving rank: rank 0 reports
    except KeyboardInterrupt:  # Ctrl-C: the checkpoints are written; say how to go on
        click.echo(f"\ninterrupted: run the same command again to resume from {out}",
                   err=True)
        raise SystemExit(130) from None
    except (SlimkitError, OSError) as e:
        _fail(e)
    summary(report, out)


@main.command()
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Processes the search stage runs trials in (one storage).")
@click.option("--storage", default=None, metavar="URL",
              help="The search's storage, e.g. postgresql://user@host/db (needs slimkit"
                   "[postgres]); hosts running the same recipe on one URL share the trials. "
                   "Default: SQLite in --out.")
@click.option("--force", is_flag=True,
              help="Replace a run of another recipe in --out, and a study of another recipe "
                   "in the storage.")
@click.option("--quiet", is_flag=True)
def search(recipe: Path, out: Path, workers: int, storage: str | None, force: bool,
           quiet: bool) -> None:
    """Run RECIPE (with a `search` stage) like compress, its trials in WORKERS processes;
    rerunning the same command resumes the search from its storage. On several hosts: the
    same command with the same --storage URL on each; they finish n_trials together."""
    _run_recipe(recipe, out, force, quiet, workers=workers, storage=storage)


@main.command()
@click.argument("recipe", type=click.Path(path_type=Path))
def check(recipe: Path) -> None:
    """Validate RECIPE and print each stage's plan, without training or writing anything."""
    try:
        click.echo(check_recipe(recipe))
    except SlimkitError as e:
        _fail(e)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def report(run_dir: Path) -> None:
    """Rebuild RUN_DIR/report.html from its report.json."""
    try:
        click.echo(str(rebuild(run_dir)))
    except SlimkitError as e:
        _fail(e)


@main.command()
@click.argument("model")
@click.option("--shape", default=None, help="Per-sample input shape, e.g. 3,224,224.")
def inspect(model: str, shape: str | None) -> None:
    """Layers, params, MACs, prunable groups and quantizable layers of MODEL: a factory
    (package.module:function), torchvision:NAME, an artifact directory or a recipe."""
    try:
        click.echo(inspect_model(model, shape))
    except SlimkitError as e:
        _fail(e)


if __name__ == "__main__":
    main()
