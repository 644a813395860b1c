"""The `mixed_precision` stage: per-layer schemes chosen under a cost budget (size in bytes, or
latency measured on this machine), least summed sensitivity, the whole Pareto front reported.

Over the accuracy budget: the next points of the front (more cost, less sensitivity) are tried
until one fits; none does → the stage is skipped.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import Field
from torch import nn

from slimkit.deploy import export
from slimkit.errors import ConfigError
from slimkit.pipeline.context import Context, StageResult
from slimkit.pipeline.measurements import example_args
from slimkit.pipeline.recipe import RecipeError, Strict
from slimkit.pipeline.registry import planner, stage
from slimkit.quant import QuantConfig, quantize
from slimkit.quant.mixed_precision import SizeCost, auto_config, default_schemes, sensitivity
from slimkit.quant.mixed_precision.latency_cost import LatencyCost

SCHEME_NAMES = ("float", "int8", "w4a8", "w4")


class MixedPrecisionStage(Strict):
    """Per-layer schemes chosen under a cost budget, least summed sensitivity."""

    budget_fraction: float = Field(0.5, gt=0, le=1)
    """The cost budget, as a share of the all-float cost."""
    cost: Literal["size", "latency"] = "size"
    """size: bytes of weights; latency: ms of each layer's kernel on this machine."""
    runtime: Literal["ort", "openvino"] = "ort"
    """cost latency: whose kernels are timed."""
    schemes: list[Literal["float", "int8", "w4a8", "w4"]] = list(SCHEME_NAMES)
    """The choices per layer (cost latency: float and int8)."""
    measure: Literal["noise", "delta_loss", "hawq"] = "noise"
    """Sensitivity: output noise (SQNR), the loss change, or HAWQ's Hessian trace."""
    target: str = "auto"
    """The CPU whose integer kernels the numerics must be exact on (slimkit.target)."""
    budget: float | None = Field(None, ge=0)
    """What this stage may lose (default: the recipe's per_stage, else max_drop)."""
    fallback: bool = True
    """Over budget: the next points of the front (more cost, less sensitivity)."""
    max_tries: int = Field(6, ge=1)
    """Points of the front tried at most."""


def _cost(cfg: MixedPrecisionStage, ctx: Context, model: nn.Module):
    """Bytes, or ms of each layer's kernel on `cfg.runtime` (the per-machine table)."""
    if cfg.cost == "size":
        return SizeCost(model)

    extra = sorted(set(cfg.schemes) - {"float", "int8"})
    if extra:
        raise RecipeError(f"stages[{ctx.index}].mixed_precision.schemes: {extra} have no "
                          "kernel in the latency table; with cost: latency choose among "
                          "[float, int8]")
    try:
        return LatencyCost.for_model(model, example_args(ctx.data.example, 1), cfg.runtime,
                                     threads=ctx.recipe.threads)
    except ConfigError as e:
        raise RecipeError(f"stages[{ctx.index}].mixed_precision.cost=latency: {e}") from e


@stage("mixed_precision", MixedPrecisionStage)
def run_mixed(ctx: Context, model: nn.Module, cfg: MixedPrecisionStage) -> StageResult:
    t0 = time.perf_counter()
    schemes = {k: default_schemes()[k] for k in cfg.schemes}
    cost = _cost(cfg, ctx, model)  # first: a cost it cannot measure fails before the work
    # a latency cost times Conv2d / Linear kernels: the choice is among those layers (an
    # embedding, untimed, follows the most common choice)
    layers = list(cost.specs) if cfg.cost == "latency" else None
    table = sensitivity(model, ctx.data.calib, schemes, layers=layers, cache_dir=ctx.dir)
    float_cost = sum(cost(n, None) for n in table.layers)
    attempts, info, budget = [], {"sensitivity": table.to_dict()}, cfg.budget_fraction
    if cfg.cost == "latency":  # this network's time outside the timed layers, for the check
        f, i = _fit_rest(ctx, model, cost, schemes, cfg)
        info["latency_rest_ms"] = {"float": f, "int8": i}
    for _ in range(cfg.max_tries):
        try:
            qc, result = auto_config(model, ctx.data.calib, budget * float_cost,
                                     schemes=schemes, cost=cost, measure=cfg.measure,
                                     table=table, base=QuantConfig.w8a8())
        except ConfigError as e:
            raise RecipeError(f"stages[{ctx.index}].mixed_precision: {e}") from e
        if all(s == "float" for s in result.chosen.assignment(table.layers).values()):
            return _all_float(ctx, model, cfg, result, cost, info)
        q = quantize(model, qc, calib=ctx.data.calib, progress=False, target=cfg.target)
        a = ctx.measure(q, f"{cfg.cost} ≤ {budget:.0%} of float", cfg, t0,
                        note=_mix(result.chosen.assignment(table.layers)))
        attempts.append(a)
        info.setdefault("fronts", []).append(result.to_dict())
        if cfg.cost == "latency":
            c = _check_latency(ctx, q, cost, result, cfg.runtime)
            info.setdefault("latency_check", []).append(c)
            a.note += (f"; {cfg.runtime} estimate {c['estimate_ms']:.3g} ms vs measured "
                       f"{c['measured_ms']:.3g} ms ({c['error']:+.0%})")
        if a.fits or not cfg.fallback or budget >= 1:
            break
        budget, t0 = min(1.0, budget * 1.5), time.perf_counter()  # buy back precision
    if a.fits or not cfg.fallback:
        return StageResult(q, attempts, f"{a.label}: " + ("fits the budget" if a.fits else
                                                          "over budget (fallback off)"),
                           False, info, a)
    return StageResult(model, attempts, "skipped: no point of the front fits the budget",
                       True, info)


def _all_float(ctx: Context, model: nn.Module, cfg, result, cost, info: dict) -> StageResult:
    """The least sensitive point within the budget quantizes nothing: said, not shipped as a
    'quantized' model (on a CPU whose int8 kernels are not faster, a latency budget at or
    below the float model's time buys no int8 layer)."""
    info.setdefault("fronts", []).append(result.to_dict())
    if cfg.cost == "latency":
        info.setdefault("latency_check", []).append(
            _check_latency(ctx, model, cost, result, cfg.runtime))
    why = (f"the least sensitive point within {cfg.budget_fraction:.0%} of the float "
           f"{cfg.cost} keeps every layer float: nothing to quantize")
    ctx.say(f"mixed_precision: {why}")
    return StageResult(model, [], f"skipped: {why}", True, info)


def _fit_rest(ctx: Context, model: nn.Module, cost, schemes, cfg) -> tuple:
    """The model measured all-float and all-int8 at batch 1 (LatencyCost.fit_rest)."""
    x = example_args(ctx.data.example, 1)
    x = x if len(x) > 1 else x[0]
    return cost.fit_rest_of(model, schemes["int8"], ctx.data.calib,
                            ctx.cache.onnx(model, ctx.dir / "latency-float.onnx"),
                            ctx.dir / "latency-int8.onnx", x, cfg.runtime, cfg.target,
                            ctx.recipe.threads)


def _check_latency(ctx: Context, q: nn.Module, cost, result, runtime: str) -> dict:
    """The chosen point measured end to end at batch 1 against the cost's estimate."""
    x = example_args(ctx.data.example, 1)
    x = x if len(x) > 1 else x[0]
    path = export(q, x, ctx.dir / "latency-check.onnx", runtime=runtime)
    n_int8 = sum(v == "int8" for v in result.chosen.assignment(result.layers).values())
    return cost.check(path, x, result.chosen.cost, n_int8, runtime, threads=ctx.recipe.threads)


def _mix(assignment: dict[str, str]) -> str:
    from collections import Counter

    return ", ".join(f"{k}×{v}" for k, v in Counter(assignment.values()).most_common())


@planner("mixed_precision")
def plan_mixed(ctx: Context, model: nn.Module, cfg: MixedPrecisionStage):
    return (f"per-layer choice among {cfg.schemes} at ≤ {cfg.budget_fraction:.0%} of the "
            f"float {cfg.cost}, least summed {cfg.measure} (sensitivity measured on "
            f"{len(ctx.data.calib)} calibration batches)"), model
