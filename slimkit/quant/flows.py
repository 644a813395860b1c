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

from slimkit.graph.fusion import conv_bn_pairs, fuse_conv_bn
from slimkit.graph.modules import set_submodule
from slimkit.quant.calibrate import calibrate, call_model
from slimkit.quant.config import QAT_ACT_OBSERVER, QuantConfig
from slimkit.quant.graph_quant import quantize_op_inputs, standalone_quantizers
from slimkit.quant.modules import QUANT_MODULES, QuantConvBn, QuantLayer
from slimkit.quant.observers import MinMax
from slimkit.quant.plan import QuantPlan, resolve_plan, with_tensors
from slimkit.target import Target


def remember_original(compressed: nn.Module, original: nn.Module) -> None:
    """Keep a reference to the uncompressed model (distillation's default teacher). Stored
    outside nn.Module's registries: not a submodule, not in state_dict, no extra memory."""
    compressed.__dict__["slimkit_original"] = original


def quant_layers(model: nn.Module) -> list[QuantLayer]:
    return [m for m in model.modules() if isinstance(m, QuantLayer)]


def _swap(model: nn.Module, plan: QuantPlan, config: QuantConfig, bn_pairs: dict[str, str]):
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
        # quantizer buffers are born on the CPU: place them beside the layer's weight
        set_submodule(model, e.name, wrapped.to(mod.weight.device))


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
    (a torch.fx.GraphModule when adds / pools got quantizers); its plan is `.slimkit_plan`.
    `target` ('auto': this machine; a preset such as 'portable' or 'x86-vnni'; a Target) picks
    the int8 weight range its kernels compute exactly — the simulation uses the same."""
    original, model = model, model if inplace else copy.deepcopy(model)
    model.eval()
    fuse_conv_bn(model)  # quantize the weights that will be deployed: BN folded in
    plan = resolve_plan(model, config, target)
    _swap(model, plan, config, {})
    model, plan = _quantize_op_inputs(model, plan, config)
    if plan.needs_calibration:
        calibrate(model, calib, progress, max_batches)
    _freeze(model)
    model.slimkit_plan = plan
    if not inplace:
        remember_original(model, original)
    return model


def prepare_qat(
    model: nn.Module, config: QuantConfig, example_inputs, *, inplace: bool = False,
    target: str | Target | None = "auto",
) -> nn.Module:
    """A trainable model with fake-quant + STE. Conv→BN pairs train folded (config.qat).
    `example_inputs` (a tensor, tuple or dict batch) seeds the activation ranges and LSQ scales.
    Activations observed with plain min-max are switched to an EMA for training (a running
    min/max would keep the widest range of the early, unstable steps forever)."""
    original, model = model, model if inplace else copy.deepcopy(model)
    config = config.with_act_observer(QAT_ACT_OBSERVER, replacing=MinMax)
    plan = resolve_plan(model, config, target)
    pairs = dict(conv_bn_pairs(model)) if config.qat.fold_bn else {}
    foldable = {e.name for e in plan.quantized()
                if isinstance(model.get_submodule(e.name), (nn.Conv1d, nn.Conv2d))}
    _swap(model, plan, config, {c: b for c, b in pairs.items() if c in foldable})
    model, plan = _quantize_op_inputs(model, plan, config)
    model.eval()
    with torch.no_grad():  # one pass to seed observers (BN in eval: running stats untouched)
        call_model(model, example_inputs)
    for layer in quant_layers(model):
        layer.start_qat(config.qat.lsq)
    for q in standalone_quantizers(model):
        q.start_qat(config.qat.lsq)
    model.train()
    model.slimkit_plan = plan
    if not inplace:
        remember_original(model, original)
    return model


def convert(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Freeze a prepared / QAT model: fold BN, pack weights, fix activation qparams."""
    source = model
    original = source.__dict__.pop("slimkit_original", None)  # shared, never deep-copied
    try:
        model = source if inplace else copy.deepcopy(source)
    finally:
        if original is not None:
            remember_original(source, original)
            remember_original(model, original)
    model.eval()
    _freeze(model)
    return model


def _freeze(model: nn.Module) -> None:
    for name, m in list(model.named_modules()):
        if isinstance(m, QuantConvBn):
            set_submodule(model, name, m.to_conv())
    for layer in quant_layers(model):
        if layer.packed is None:
            layer.freeze()
    for q in standalone_quantizers(model):
        q.freeze()


def _quantize_op_inputs(model: nn.Module, plan: QuantPlan, config: QuantConfig):
    if config.op_inputs is None:
        return model, plan
    model, inserted, note = quantize_op_inputs(model, config.op_inputs,
                                               config.qat.freeze_observers_after)
    return model, with_tensors(plan, inserted, config.op_inputs, note)
