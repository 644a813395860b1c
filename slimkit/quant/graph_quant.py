"""Quantize tensors that no layer owns: the inputs of residual adds.

Integer runtimes keep a residual block in int8 only when both inputs of its Add are
quantized (QLinearAdd); otherwise the convs feeding it fall back to float. So slimkit's
simulation quantizes those tensors too, with the same activation scheme as layer inputs,
and the exported QDQ graph matches it node for node.
"""

from __future__ import annotations

import warnings

from torch import nn

from slimkit.graph.trace import TraceError, symbolic_trace, tensor_adds
from slimkit.quant.modules import QuantLayer
from slimkit.quant.quantizers import ActQuantizer
from slimkit.quant.spec import ActQuant


def quantize_add_inputs(
    model: nn.Module, spec: ActQuant, freeze_after: int | None = None
) -> tuple[nn.Module, list[str]]:
    """Returns (model, names of the inserted quantizers). The model becomes a GraphModule
    when any add is found; a model fx cannot trace is returned as is, with a warning."""
    try:
        gm = symbolic_trace(model, (QuantLayer, ActQuantizer))
    except TraceError as e:
        warnings.warn(f"residual adds stay float: {e}", stacklevel=3)
        return model, []
    adds = tensor_adds(gm)
    if not adds:
        return model, []
    names = []
    for node in adds:
        for i in range(2):
            name = f"{node.name}_input{i}_quantizer"
            gm.add_submodule(name, ActQuantizer(spec, name, freeze_after))
            with gm.graph.inserting_before(node):
                q = gm.graph.call_module(name, (node.args[i],))
            node.update_arg(i, q)
            names.append(name)
    gm.graph.lint()
    gm.recompile()
    return gm, names


def standalone_quantizers(model: nn.Module) -> list[ActQuantizer]:
    """Activation quantizers not owned by a QuantLayer (the add inputs)."""
    owned = {id(q) for m in model.modules() if isinstance(m, QuantLayer)
             for q in m.act_quantizers()}
    return [m for m in model.modules() if isinstance(m, ActQuantizer) and id(m) not in owned]


__all__ = ["quantize_add_inputs", "standalone_quantizers"]
