"""The `quantize` stage: post-training (a preset, calibrated on the data) or quantization-aware
training (optionally distilled from the original model), under the budget.

Fallbacks. PTQ over budget: measure each layer's sensitivity (the metric regained when only
that layer stays float), then keep the most sensitive layers float, most sensitive first,
until the model fits. QAT over budget: train again from the stage's input with twice the
epochs, up to `qat.max_epochs`. When no attempt is within the per-stage limit but some are
within the overall budget, the stage keeps the best of those and says so: a run never ends
with a float model while a quantized one that fits the overall budget was made. Nothing
fits at all → the stage is skipped.
"""

from __future__ import annotations

import copy
import time
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from slimkit.errors import ConfigError
from slimkit.graph.fusion import fuse_conv_bn
from slimkit.pipeline.context import Attempt, Context, StageResult
from slimkit.pipeline.recipe import RecipeError, Strict
from slimkit.pipeline.registry import planner, stage
from slimkit.quant import (
    MSE,
    Entropy,
    MinMax,
    MovingAverage,
    Percentile,
    QuantConfig,
    convert,
    prepare_qat,
    quantize,
    resolve_plan,
    sqnr,
)
from slimkit.quant import algorithms as qa
from slimkit.quant.mixed_precision.dynamic import per_token_where_needed
from slimkit.quant.modules import QuantLayer
from slimkit.record import record_of

OBSERVERS = {"minmax": MinMax, "ema": MovingAverage, "percentile": Percentile,
             "mse": MSE, "entropy": Entropy}
HIST_LAYERS, HIST_BINS = 12, 48  # the report's weight histograms


class QATSpec(Strict):
    epochs: int = Field(4, ge=1)
    lr: float = Field(5e-4, gt=0)
    batch_size: int = Field(64, ge=1)
    lsq: bool = False
    fold_bn: bool = True
    freeze_bn_after: int | None = Field(None, ge=0)
    freeze_observers_after: int | None = Field(None, ge=0)
    kd: bool = False  # distil from the original model while training
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1)
    max_epochs: int = Field(16, ge=1)  # fallback: double the epochs up to this


class QuantizeStage(Strict):
    preset: Literal["w8a8", "w4a8", "w4a4", "dynamic", "weight_only", "nonuniform"] = "w8a8"
    bits: int = Field(8, ge=1, le=16)  # weight_only / dynamic / nonuniform
    group_size: int | None = Field(None, ge=1)
    kind: Literal["pow2", "kmeans", "binary", "ternary"] = "kmeans"
    observer: Literal["minmax", "ema", "percentile", "mse", "entropy"] = "minmax"
    signed_acts: bool = False
    # dynamic: per_token (int8 per row) or per_tensor (uint8, ORT's fused kernel); with
    # per_tensor, per_token_layers > 0 makes the most sensitive Linear layers per-token
    activations: Literal["per_token", "per_tensor"] = "per_token"
    per_token_layers: int = Field(0, ge=0)
    target: str = "auto"  # which CPU the int8 numerics must be exact on (slimkit.target)
    skip: list[str] = []  # layer name patterns kept float
    qat: QATSpec | None = None
    # advanced PTQ, in order: [{cle: {}}, {adaround: {iterations: 1000}}, {bias_correction: {}}]
    algorithms: list[dict] = []
    budget: float | None = Field(None, ge=0)
    fallback: bool = True

    @model_validator(mode="after")
    def _algorithms(self):
        for j, step in enumerate(self.algorithms):
            try:
                qa.algorithm_from_dict(step)
            except ConfigError as e:
                raise ValueError(f"algorithms[{j}]: {e}") from None
        if self.algorithms and self.qat is not None:
            raise ValueError("algorithms are post-training methods: drop qat, or algorithms")
        if self.activations != "per_token" and self.preset != "dynamic":
            raise ValueError("activations chooses the granularity of preset: dynamic; "
                             f"{self.preset} calibrates its activations")
        if self.per_token_layers and (self.preset, self.activations) != ("dynamic",
                                                                           "per_tensor"):
            raise ValueError("per_token_layers chooses layers of preset: dynamic with "
                             "activations: per_tensor")
        return self


def _preset(cfg: QuantizeStage) -> QuantConfig:
    obs = OBSERVERS[cfg.observer]()
    return {"w8a8": lambda: QuantConfig.w8a8(obs, cfg.signed_acts),
            "w4a8": lambda: QuantConfig.w4a8(obs, cfg.signed_acts),
            "w4a4": lambda: QuantConfig.w4a4(obs),
            "dynamic": lambda: QuantConfig.dynamic(cfg.bits, cfg.activations),
            "weight_only": lambda: QuantConfig.weight_only(cfg.bits, cfg.group_size, obs),
            "nonuniform": lambda: QuantConfig.nonuniform(cfg.kind, cfg.bits)}[cfg.preset]()


def to_config(cfg: QuantizeStage, choose=None) -> QuantConfig:
    """The stage's QuantConfig. `choose(bits, layers)` → the config with per_token_layers
    picked (that needs the model and data); without it (the plan) all stay per-tensor."""
    try:
        if cfg.per_token_layers and choose is not None:
            qc = choose(cfg.bits, cfg.per_token_layers)
        else:
            qc = _preset(cfg)
    except ConfigError as e:
        raise RecipeError(f"quantize: {e}") from e
    for pattern in cfg.skip:
        qc = qc.skip(pattern)
    if cfg.qat is not None:
        q = cfg.qat
        qc = qc.with_qat(lsq=q.lsq, fold_bn=q.fold_bn, freeze_bn_after=q.freeze_bn_after,
                         freeze_observers_after=q.freeze_observers_after)
    return qc


def _ptq(ctx: Context, model: nn.Module, qc: QuantConfig, cfg) -> nn.Module:
    try:
        if cfg.algorithms:  # CLE / SmoothQuant / AWQ → quantize → GPTQ / AdaRound / BC

            q, report = qa.ptq(model, qc, ctx.data.calib, cfg.algorithms)
            ctx.notes.append(str(report))
            return q
        return quantize(model, qc, calib=ctx.data.calib, progress=ctx.progress is not False,
                           target=cfg.target)
    except ConfigError as e:
        raise RecipeError(f"stages[{ctx.index}].quantize: {e}") from e


@stage("quantize", QuantizeStage)
def run_quantize(ctx: Context, model: nn.Module, cfg: QuantizeStage) -> StageResult:
    if cfg.qat is not None:
        return _run_qat(ctx, model, cfg)
    t0 = time.perf_counter()
    qc = to_config(cfg, lambda bits, n: _per_token_choice(ctx, model, bits, n))
    q = _ptq(ctx, model, qc, cfg)
    first = ctx.measure(q, f"{qc.name} PTQ", cfg, t0)
    info = _info(model, q)
    if first.fits or not cfg.fallback:
        return StageResult(q, [first], _kept(first), False, info, first)
    return _float_fallback(ctx, model, cfg, qc, q, first, info)


def _per_token_choice(ctx: Context, model: nn.Module, bits: int, layers: int):
    qc, choice = per_token_where_needed(model, ctx.data.calib, layers, bits)
    ctx.notes.append(choice.summary())
    return qc


def _float_fallback(ctx, model, cfg, qc, q, first: Attempt, info) -> StageResult:
    """Keep the most sensitive layers float, most sensitive first, until the model fits."""
    names = [e.name for e in record_of(q).plan.quantized()]
    gain = {}
    for name in names:  # sensitivity: what quantizing everything but this layer costs
        alone = _ptq(ctx, model, qc.skip(name), cfg)
        gain[name] = ctx.metric.drop(ctx.metric(alone), first.metric)  # regained
    order = sorted(names, key=lambda n: -gain[n])
    info["sensitivity"] = [{"layer": n, "gain": gain[n]} for n in order]
    attempts, kept = [first], []
    ctx.say(f"quantize: {ctx.over(first, cfg)}; keeping the most sensitive layers float, one "
            f"more per attempt: at most {len(order) - 1} attempts, about {first.seconds:.0f} s "
            "each")
    for name in order[:-1]:  # all float would be no quantization at all
        t0 = time.perf_counter()
        kept.append(name)
        trial = qc
        for n in kept:
            trial = trial.skip(n)
        cand = _ptq(ctx, model, trial, cfg)
        a = ctx.measure(cand, f"{qc.name}, {len(kept)} layer(s) float", cfg, t0,
                        note="float: " + ", ".join(kept))
        attempts.append(a)
        if a.fits:
            info.update(_info(model, cand))
            return StageResult(cand, attempts, _kept(a), False, info, a)
    overall = [a for a in attempts if a.fits_overall]
    if overall:  # the most quantized model within the overall budget
        a = overall[0]
        trial = qc
        for n in kept[:attempts.index(a)]:
            trial = trial.skip(n)
        cand = _ptq(ctx, model, trial, cfg)
        info.update(_info(model, cand))
        return StageResult(cand, attempts, _kept_overall(ctx, a, cfg), False, info, a)
    return StageResult(model, attempts, "skipped: no mix of float and quantized layers fits",
                       True, info)


def _run_qat(ctx: Context, model: nn.Module, cfg: QuantizeStage) -> StageResult:
    qc, spec, attempts, models = to_config(cfg), cfg.qat, [], []
    epochs = spec.epochs
    while True:
        t0 = time.perf_counter()
        torch.manual_seed(ctx.recipe.seed + ctx.index)
        # (inputs,): the data contract's 1-tuple, whatever form the inputs take
        qat = prepare_qat(model, qc, (ctx.data.example,), target=cfg.target)
        loss = ctx.recovery_loss(spec.kd, spec.temperature, spec.alpha)
        ctx.train(qat, spec.model_copy(update={"epochs": epochs}), f"ckpt-qat{epochs}", loss)
        info = _info(None, qat)
        q = convert(qat)
        a = ctx.measure(q, f"{qc.name} QAT, {epochs} epochs" + (" + KD" if spec.kd else ""),
                        cfg, t0)
        attempts.append(a)
        models.append((q, info))
        if a.fits or not cfg.fallback or epochs * 2 > spec.max_epochs:
            break
        ctx.say(f"quantize: {ctx.over(a, cfg)}; QAT again with {epochs * 2} epochs, about "
                f"{2 * a.seconds:.0f} s")
        epochs *= 2
    if a.fits or not cfg.fallback:
        return StageResult(q, attempts, _kept(a), False, info, a)
    overall = [k for k, x in enumerate(attempts) if x.fits_overall]
    if overall:  # the best QAT model within the overall budget
        k = max(overall, key=lambda k: (-attempts[k].total_drop, -k))
        q, info = models[k]
        return StageResult(q, attempts, _kept_overall(ctx, attempts[k], cfg), False, info,
                           attempts[k])
    return StageResult(model, attempts, f"skipped: QAT up to {epochs} epochs does not fit",
                       True, info)


def _kept(a: Attempt) -> str:
    return f"{a.label}: " + ("fits the budget" if a.fits else "over budget (fallback off)")


def _kept_overall(ctx: Context, a: Attempt, cfg) -> str:
    text = (f"{a.label}: over the per-stage limit ({ctx.stage_budget(cfg):g}, drop "
            f"{ctx.metric.drop(ctx.reference, a.metric):.3g}) but within the overall budget "
            f"(total drop {a.total_drop:.3g} of {ctx.recipe.budget.max_drop:g}): kept, so the "
            "run ends quantized")
    ctx.say(text)
    return text


@torch.no_grad()
def _info(float_model: nn.Module | None, q: nn.Module) -> dict:
    """The plan and, per quantized layer, weight SQNR and float-vs-quantized histograms.
    float_model=None: `q` is a prepared QAT model (it holds both weights)."""
    ref = None
    if float_model is not None:
        ref = copy.deepcopy(float_model).eval()
        fuse_conv_bn(ref)  # PTQ quantizes BN-folded weights
    layers = []
    for m in (m for m in q.modules() if isinstance(m, QuantLayer)):
        if m.packed is None and m.weight_quantizer is None:
            continue
        wf = m.float_weight() if ref is None else ref.get_submodule(m.name).weight
        wq = m.weight
        entry = {"layer": m.name, "scheme": m.spec.describe(), "weight_sqnr": sqnr(wf, wq)}
        if len(layers) < HIST_LAYERS:
            entry["hist"] = _hist(wf.detach().float(), wq.detach().float())
        layers.append(entry)
    return {"plan": record_of(q).plan.to_dict(), "layers": layers}


def _hist(wf: torch.Tensor, wq: torch.Tensor) -> dict:
    lo = float(min(wf.min(), wq.min()))
    hi = float(max(wf.max(), wq.max()))
    hi = hi if hi > lo else lo + 1e-6
    edges = torch.linspace(lo, hi, HIST_BINS + 1)
    f = torch.histc(wf.flatten(), HIST_BINS, lo, hi)
    qh = torch.histc(wq.flatten(), HIST_BINS, lo, hi)
    return {"edges": [round(float(e), 6) for e in edges], "float": [int(v) for v in f],
            "quant": [int(v) for v in qh]}


@planner("quantize")
def plan_quantize(ctx: Context, model: nn.Module, cfg: QuantizeStage):
    m = copy.deepcopy(model).eval()
    fuse_conv_bn(m)
    plan = resolve_plan(m, to_config(cfg), cfg.target)
    how = "QAT" if cfg.qat else "PTQ"
    if cfg.per_token_layers:
        how += (f"; the {cfg.per_token_layers} Linear layer(s) most sensitive to per-tensor "
                "activations become per-token (ranked on the calibration data at run time)")
    return f"{how}\n{plan}", model
