"""The public flows: quantize (PTQ), prepare_qat → train → convert.

prepare:  swap each planned layer for its quantized wrapper (observers on, fake-quant off)
PTQ:      fold BN (inference), prepare, calibrate, convert
QAT:      prepare (Conv+BN kept as one folded-BN module), start fake-quant, the user trains,
          convert folds BN for good and packs the weights
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

from slimkit.errors import ConfigError
from slimkit.graph.fusion import conv_bn_pairs, fold_bn, fuse_conv_bn
from slimkit.graph.modules import set_submodule
from slimkit.quant.calibrate import calibrate, call_model
from slimkit.quant.config import QAT_ACT_OBSERVER, QuantConfig
from slimkit.quant.graph_quant import quantize_op_inputs, standalone_quantizers
from slimkit.quant.modules import QUANT_MODULES, QuantConvBn, QuantLayer
from slimkit.quant.observers import MinMax
from slimkit.quant.plan import QuantPlan, resolve_plan, with_tensors
from slimkit.quant.recurrent import QuantRNN
from slimkit.quant.spec import LayerQuant
from slimkit.record import (
    ModelRecord,
    Step,
    copy_model,
    note_source,
    rebuilds,
    record_of,
    save_check,
    set_record,
)
from slimkit.target import Target


def _record(model: nn.Module, source_record, original: nn.Module | None, plan: QuantPlan,
            kind: str, config: dict, note: str) -> None:
    """The quantized model's record: the source model's (a GraphModule is a new object and
    does not inherit it), this step, the plan, and the uncompressed original."""
    rec = copy.deepcopy(source_record) if source_record is not None else ModelRecord()
    if original is not None:
        note_source(rec, original)
    if rec.original is None and original is not None:
        rec.original = original  # a reference (distillation's default teacher), never copied
    rec.plan = plan
    rec.add(kind, config, note)
    set_record(model, rec)


def model_numerics(model: nn.Module) -> str:
    """'fp32' for a model slimkit did not quantize; else its plan's numerics ('int8',
    'int4 weights', 'w4a8', 'mixed')."""
    rec = record_of(model, create=False)
    if not is_quantized(model) or rec is None or rec.plan is None:
        return "fp32"
    return rec.plan.numerics()


def is_quantized(model: nn.Module) -> bool:
    """slimkit quantized at least one of its layers (QuantLayer or QuantRNN)."""
    return bool(quant_layers(model))


def quant_layers(model: nn.Module) -> list[QuantLayer]:
    return [m for m in model.modules() if isinstance(m, QuantLayer)]


def _wrappers(model: nn.Module) -> list[QuantLayer | QuantRNN]:
    """Every quantized wrapper: single-weight layers and recurrent ones."""
    return [m for m in model.modules() if isinstance(m, QuantLayer | QuantRNN)]


def _no_algorithms(config: QuantConfig, why: str) -> None:
    """A config's algorithms are never silently ignored."""
    if config.algorithms:
        raise ConfigError(f"{config.name} names algorithms {list(config.algorithms)}: {why}")


def _covering(plan: QuantPlan, model: nn.Module) -> QuantPlan:
    """A plan that quantizes nothing would return the float model as if quantized: refused,
    with every layer's reason."""
    if plan.quantized() or plan.tensors:
        return plan
    why = "; ".join(f"{e.name or '(model)'} ({e.module_type}): {e.reason}"
                    for e in plan.entries[:6]) or "it has no layer slimkit quantizes"
    raise ConfigError(f"{plan.config_name}: the plan quantizes no layer of "
                      f"{type(model).__name__} — {why}. Remove the skip rules that cover every "
                      "layer, or pick a config for these layer types")


def _swap(model: nn.Module, plan: QuantPlan, config: QuantConfig,
          bn_pairs: dict[str, str]) -> nn.Module:
    """Wrap every planned layer; returns the model (the wrapper itself when the model *is*
    one layer, e.g. a bare nn.Linear)."""
    opts = config.qat
    for e in plan.quantized():
        mod = model.get_submodule(e.name)
        if e.name in bn_pairs:
            bn_name = bn_pairs[e.name]
            wrapped = QuantConvBn(mod, model.get_submodule(bn_name), e.spec, e.name,
                                  opts.freeze_observers_after, opts.freeze_bn_after)
            set_submodule(model, bn_name, nn.Identity())
        else:
            wrapped = QUANT_MODULES[type(mod)](mod, e.spec, e.name, opts.freeze_observers_after)
        # quantizer buffers are born on the CPU: place them beside the layer's weights
        wrapped = wrapped.to(next(mod.parameters()).device)
        if e.name == "":
            return wrapped
        set_submodule(model, e.name, wrapped)
    return model


def quantize(
    model: nn.Module,
    config: QuantConfig,
    calib: Iterable | None = None,
    *,
    inplace: bool = False,
    progress: bool = True,
    max_batches: int | None = None,
    target: str | Target | None = "auto",
) -> nn.Module:
    """Post-training quantization. Static configs calibrate on `calib`; dynamic and
    weight-only configs need no data. Returns an ordinary nn.Module with packed weights
    (a torch.fx.GraphModule when adds / pools got quantizers); `sk.describe(q)` prints its
    plan (`sk.record_of(q).plan`).
    `target` ('auto': this machine; a preset such as 'portable' or 'x86-vnni'; a Target) picks
    the int8 weight range its kernels compute exactly — the simulation uses the same."""
    _no_algorithms(config, "run it through sk.quantize (slimkit.quant.quantize), which runs "
                   "them")
    original, model = model, model if inplace else copy_model(model)
    source_record = record_of(original, create=False)
    model.eval()
    pairs = fuse_conv_bn(model)  # quantize the weights that will be deployed: BN folded in
    plan = _covering(resolve_plan(model, config, target), model)
    model = _swap(model, plan, config, {})
    model, plan = _quantize_op_inputs(model, plan, config)
    if plan.needs_calibration:
        calibrate(model, calib, progress, max_batches)
    _freeze(model)
    _record(model, source_record, None if inplace else original, plan, "quantize",
            {"flow": "ptq", "config": config.name, "fused": [list(p) for p in pairs]},
            f"{config.name} post-training quantization")
    return model


def prepare_qat(
    model: nn.Module, config: QuantConfig, example_inputs, *, inplace: bool = False,
    target: str | Target | None = "auto",
) -> nn.Module:
    """A trainable model with fake-quant + STE. Conv→BN pairs train folded (config.qat).
    `example_inputs` (a tensor, tuple or dict batch) seeds the activation ranges and LSQ scales.
    Activations observed with plain min-max are switched to an EMA for training (a running
    min/max would keep the widest range of the early, unstable steps forever)."""
    _no_algorithms(config, "they are post-training methods; quantization-aware training takes "
                   "none")
    original, model = model, model if inplace else copy_model(model)
    source_record = record_of(original, create=False)
    config = config.with_act_observer(QAT_ACT_OBSERVER, replacing=MinMax)
    plan = _covering(resolve_plan(model, config, target), model)
    pairs = dict(conv_bn_pairs(model)) if config.qat.fold_bn else {}
    foldable = {e.name for e in plan.quantized()
                if isinstance(model.get_submodule(e.name), (nn.Conv1d, nn.Conv2d))}
    folded = {c: b for c, b in pairs.items() if c in foldable}
    model = _swap(model, plan, config, folded)
    model, plan = _quantize_op_inputs(model, plan, config)
    model.eval()
    with torch.no_grad():  # one pass to seed observers (BN in eval: running stats untouched)
        call_model(model, example_inputs)
    for layer in _wrappers(model):
        layer.start_qat(config.qat.lsq)
    for q in standalone_quantizers(model):
        q.start_qat(config.qat.lsq)
    model.train()
    # BN folded into the conv for QAT: after convert, the same structure as PTQ's fuse
    _record(model, source_record, None if inplace else original, plan, "quantize",
            {"flow": "qat", "config": config.name, "fused": [list(p) for p in folded.items()],
             "lsq": config.qat.lsq}, f"{config.name} quantization-aware training")
    return model


def convert(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Freeze a prepared / QAT model: fold BN, pack weights, fix activation qparams."""
    model = model if inplace else copy_model(model)  # the record shares its original
    model.eval()
    _freeze(model)
    rec = record_of(model)
    rec.add("convert", {}, "packed integer weights, fixed activation ranges")
    return model


def in_training(model: nn.Module) -> bool:
    """Prepared for QAT and not converted yet: a fake-quant layer without packed weights, or
    a Conv+BN still trained folded."""
    return any(isinstance(m, QuantConvBn) or (
        isinstance(m, QuantLayer | QuantRNN) and m.packed is None
        and m.weight_quantizer is not None) for m in model.modules())


@save_check
def _unconverted(model: nn.Module) -> str | None:
    if in_training(model):
        return ("the model is prepared for QAT but not converted: sk.convert(model) first (a "
                "training run checkpoints through the Trainer instead)")
    return None


def _freeze(model: nn.Module, structure_only: bool = False) -> None:
    """Pack weights and fix activation qparams. structure_only: the same modules and buffer
    shapes without calibration (sk.load fills them from the artifact)."""
    for name, m in list(model.named_modules()):
        if isinstance(m, QuantConvBn):
            set_submodule(model, name, m.to_conv())
    for layer in _wrappers(model):
        if layer.packed is None:
            layer.freeze(structure_only)
    for q in standalone_quantizers(model):
        q.freeze(structure_only)


rebuilds("convert")(lambda model, step, rec: model)  # the quantize rebuild is already frozen


@rebuilds("quantize")
def _rebuild(model: nn.Module, step: Step, rec: ModelRecord) -> nn.Module:
    """The structure quantize / prepare_qat + convert left, on a fresh float model: the same
    BN folds, wrappers, op-input quantizers (same fx node names) and packed-buffer shapes."""
    plan = rec.plan
    for conv, bn in step.config["fused"]:
        fold_bn(model.get_submodule(conv), model.get_submodule(bn))
        set_submodule(model, bn, nn.Identity())
    model = _swap(model, plan, QuantConfig(LayerQuant(None)), {})
    if plan.tensors:
        model, inserted, _ = quantize_op_inputs(model, plan.tensors[0].spec.input)
        if [n for n, _ in inserted] != [e.name for e in plan.tensors]:
            raise ConfigError(
                "the rebuilt model's residual adds / pools differ from the saved plan "
                f"({[n for n, _ in inserted]} vs {[e.name for e in plan.tensors]}): is this "
                "the model code the artifact was saved from?")
    _freeze(model, structure_only=True)
    model.eval()
    return model


def _quantize_op_inputs(model: nn.Module, plan: QuantPlan, config: QuantConfig):
    if config.op_inputs is None:
        return model, plan
    model, inserted, note = quantize_op_inputs(model, config.op_inputs,
                                               config.qat.freeze_observers_after)
    return model, with_tensors(plan, inserted, config.op_inputs, note)
