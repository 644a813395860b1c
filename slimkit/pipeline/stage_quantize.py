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

import torch
from pydantic import Field, model_validator
from torch import nn

from slimkit.errors import ConfigError
from slimkit.graph.fusion import fuse_conv_bn
from slimkit.pipeline.context import Attempt, Context, StageResult
from slimkit.pipeline.recipe import RecipeError
from slimkit.pipeline.registry import planner, stage
from slimkit.quant import (
    QATOptions,
    QuantConfig,
    QuantPreset,
    convert,
    prepare_qat,
    quantize,
    resolve_plan,
    sqnr,
)
from slimkit.quant.mixed_precision.dynamic import per_token_where_needed
from slimkit.quant.modules import QuantLayer
from slimkit.record import record_of
from slimkit.train.config import Schedule

HIST_LAYERS, HIST_BINS = 12, 48  # the report's weight histograms


class QATSpec(QATOptions, Schedule):
    """Quantization-aware training: every QATOptions and Schedule field, plus distillation."""

    epochs: int = Field(4, ge=1)
    """Epochs of the first attempt."""
    lr: float = Field(5e-4, gt=0)
    """Peak learning rate."""
    kd: bool = False
    """Distil from the original model while training (the task's distillation loss)."""
    temperature: float = Field(4.0, gt=0)
    """Softmax temperature of the distillation (classification tasks)."""
    alpha: float = Field(0.9, ge=0, le=1)
    """Weight of the teacher's term; 1 − alpha weighs the targets' loss."""
    max_epochs: int = Field(16, ge=1)
    """Over budget: train again with twice the epochs, up to this."""


class QuantizeStage(QuantPreset):
    """Every QuantPreset field, plus training and the guard."""

    per_token_layers: int = Field(0, ge=0)
    """preset dynamic with activations per_tensor: this many Linear layers, those per-tensor
    activations hurt most (ranked on the calibration data), become per-token."""
    qat: QATSpec | None = None
    """Quantization-aware training instead of post-training quantization."""
    budget: float | None = Field(None, ge=0)
    """What this stage may lose (default: the recipe's per_stage, else max_drop)."""
    fallback: bool = True
    """Over budget: PTQ keeps the most sensitive layers float, one more per attempt; QAT
    trains again with twice the epochs."""

    @model_validator(mode="after")
    def _training(self):
        if self.algorithms and self.qat is not None:
            raise ValueError("algorithms are post-training methods: drop qat, or algorithms")
        if self.per_token_layers and (self.preset, self.activations) != ("dynamic",
                                                                           "per_tensor"):
            raise ValueError("per_token_layers chooses layers of preset: dynamic with "
                             "activations: per_tensor")
        return self


def to_config(cfg: QuantizeStage, choose=None) -> QuantConfig:
    """The stage's QuantConfig. `choose(bits, layers)` → the config with per_token_layers
    picked (that needs the model and data); without it (the plan) all stay per-tensor."""
    try:
        if cfg.per_token_layers and choose is not None:
            qc = cfg.refine(choose(cfg.bits, cfg.per_token_layers))
        else:
            qc = cfg.config()
    except ConfigError as e:
        raise RecipeError(f"quantize: {e}") from e
    if cfg.qat is not None:
        qc = qc.with_qat(**cfg.qat.model_dump(include=set(QATOptions.model_fields)))
    return qc


def _ptq(ctx: Context, model: nn.Module, qc: QuantConfig, cfg) -> nn.Module:
    """sk.quantize: the preset, calibrated, with the stage's algorithms around it."""
    try:
        q = quantize(model, qc, calib=ctx.data.calib, progress=ctx.run.progress is not False,
                     target=cfg.target)
    except ConfigError as e:
        raise RecipeError(f"stages[{ctx.index}].quantize: {e}") from e
    if qc.algorithms:  # CLE / SmoothQuant / AWQ → calibration → GPTQ / AdaRound / BC
        ctx.notes.append(str(record_of(q).report))
    return q


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
    qc, spec = to_config(cfg), cfg.qat

    def attempt(epochs: int):
        t0 = time.perf_counter()
        torch.manual_seed(ctx.recipe.seed + ctx.index)
        # (inputs,): the data contract's 1-tuple, whatever form the inputs take
        qat = prepare_qat(model, qc, (ctx.data.example,), target=cfg.target)
        loss = ctx.recovery_loss(spec.kd, spec.temperature, spec.alpha)
        ctx.train(qat, spec.model_copy(update={"epochs": epochs}), f"ckpt-qat{epochs}", loss)
        info = _info(None, qat)
        q = convert(qat)
        label = f"{qc.name} QAT, {epochs} epochs" + (" + KD" if spec.kd else "")
        return ctx.measure(q, label, cfg, t0), (q, info)

    tried = ctx.doubling("quantize (QAT)", spec.epochs, spec.max_epochs, cfg.fallback, cfg,
                         attempt)
    attempts, models = [a for a, _ in tried], [m for _, m in tried]
    a, (q, info) = tried[-1]
    epochs = spec.epochs * 2 ** (len(tried) - 1)
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
    text = (f"{a.label}: over the per-stage limit ({ctx.guard.stage_budget(cfg):g}, drop "
            f"{ctx.metric.drop(ctx.guard.reference, a.metric):.3g}) but within the overall budget "
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
