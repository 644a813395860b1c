"""The `slimkit` command line."""

from __future__ import annotations

import time
from pathlib import Path

import click


@click.group()
@click.version_option(package_name="slimkit")
def main() -> None:
    """slimkit: make trained PyTorch models smaller and faster, and prove it."""


@main.command()
@click.option("--cache-dir", type=click.Path(path_type=Path), default=Path(".slimkit"),
              show_default=True, help="Where the trained fp32 checkpoint is cached.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None,
              help="Also write the table as JSON here.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(cache_dir: Path, json_out: Path | None, quiet: bool) -> None:
    """Train DigitsCNN on scikit-learn's digits, compress it, print the comparison table."""
    from slimkit.bench.machine import machine_line
    from slimkit.examples.demo import demo_to_json, format_parity, format_table, run_demo
    from slimkit.examples.demo_distill import format_distill
    from slimkit.examples.demo_prune import format_prune

    t = time.perf_counter()
    click.echo(machine_line(2) + "\n")
    demo = run_demo(cache_dir, progress=not quiet)
    click.echo(format_table(demo.rows))
    click.echo(f"\n{format_parity(demo.parity)}\n")
    click.echo(demo.latency)
    click.echo("\n" + format_distill(demo.distill))
    click.echo("\n" + format_prune(demo.prune))
    click.echo(f"\ndemo finished in {time.perf_counter() - t:.1f} s")
    if json_out is not None:
        json_out.write_text(demo_to_json(demo))


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

    from slimkit.bench import Candidate, benchmark

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
    from slimkit.models import DigitsCNN
    from slimkit.quant import QuantConfig, resolve_plan

    configs = {
        "w8a8": QuantConfig.w8a8, "w4a8": QuantConfig.w4a8,
        "w4": lambda: QuantConfig.weight_only(4), "w4g32": lambda: QuantConfig.weight_only(4, 32),
        "dynamic": QuantConfig.dynamic,
    }
    click.echo(str(resolve_plan(DigitsCNN(), configs[preset]())))


if __name__ == "__main__":
    main()
