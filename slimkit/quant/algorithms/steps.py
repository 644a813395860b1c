"""How sk.load replays each algorithm's step on a fresh model (structure only; the weights,
scales, codes and biases come from the artifact afterwards)."""

from __future__ import annotations

import torch
from torch import nn

from slimkit.graph.fusion import fold_bn
from slimkit.graph.modules import set_submodule
from slimkit.quant.algorithms.log2 import Log2Activations, Log2Quantizer
from slimkit.quant.algorithms.scaled import ScaledInputLinear
from slimkit.record import rebuilds


def _fold(model: nn.Module, structure: dict) -> None:
    for conv, bn in structure.get("fused", []):
        fold_bn(model.get_submodule(conv), model.get_submodule(bn))
        set_submodule(model, bn, nn.Identity())


def _scaled(model: nn.Module, step, rec) -> nn.Module:
    st = step.config["structure"]
    _fold(model, st)
    for name in st.get("scaled", []):
        lin = model.get_submodule(name)
        set_submodule(model, name, ScaledInputLinear.wrap(lin, torch.ones(lin.in_features)))
    return model


def _cle(model: nn.Module, step, rec) -> nn.Module:
    _fold(model, step.config["structure"])
    return model


def _codes_only(model: nn.Module, step, rec) -> nn.Module:
    return model  # GPTQ / AdaRound change integer codes, not the structure


def _bias(model: nn.Module, step, rec) -> nn.Module:
    for name in step.config["structure"].get("added_bias", []):
        inner = model.get_submodule(name).layer
        inner.bias = nn.Parameter(torch.zeros(inner.weight.shape[0] if hasattr(inner, "weight")
                                              else model.get_submodule(name).packed.shape[0]))
    return model


def _log2(model: nn.Module, step, rec) -> nn.Module:
    cfg = Log2Activations.from_dict(step.config["config"])
    for path in step.config["structure"].get("quantizers", []):
        q = Log2Quantizer(cfg, path)
        q.freeze()
        set_submodule(model, path, q)
    return model


for _kind, _fn in (("cle", _cle), ("smoothquant", _scaled), ("awq", _scaled),
                   ("gptq", _codes_only), ("adaround", _codes_only), ("bias_correction", _bias),
                   ("log2_activations", _log2)):
    rebuilds(_kind)(_fn)
