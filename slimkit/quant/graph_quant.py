"""Quantize tensors that no layer owns: the inputs of residual adds and average pools.

An integer runtime runs a conv in int8 (QLinearConv) only when its output is quantized
too, and a residual Add only when both its inputs are (QLinearAdd). The output of a block
that ends in an Add, or of the last conv before global pooling, is an input of no
quantized layer — so slimkit quantizes those tensors, with the layer-input activation
scheme, and the exported QDQ graph matches its simulation node for node.
"""

from __future__ import annotations

import warnings

from torch import nn

from slimkit.graph.trace import TraceError, average_pools, symbolic_trace, tensor_adds
from slimkit.quant.modules import QuantLayer
from slimkit.quant.quantizers import ActQuantizer
from slimkit.quant.spec import ActQuant


def quantize_op_inputs(
    model: nn.Module, spec: ActQuant, freeze_after: int | None = None
) -> tuple[nn.Module, list[tuple[str, str]], str | None]:
    """Returns (model, [(quantizer name, what it quantizes)], note). The model becomes a
    GraphModule when such ops exist; a model fx cannot trace is returned as is, with a
    warning and a note for the plan (its adds and pools stay float)."""
    try:
        gm = symbolic_trace(model, (QuantLayer, ActQuantizer))
    except TraceError as e:
        note = f"residual adds and pools stay float: {e}"
        warnings.warn(note, stacklevel=3)
        return model, [], note
    targets = [(n, i, "add input") for n in tensor_adds(gm) for i in range(2)]
    targets += [(n, 0, "pool input") for n in average_pools(gm)]
    if not targets:
        return model, [], None
    inserted = []
    for node, i, what in targets:
        name = f"{node.name}_input{i}_quantizer"
        gm.add_submodule(name, ActQuantizer(spec, name, freeze_after))
        with gm.graph.inserting_before(node):
            q = gm.graph.call_module(name, (node.args[i],))
        node.update_arg(i, q)
        inserted.append((name, what))
    gm.graph.lint()
    gm.recompile()
    return gm, inserted, None


def standalone_quantizers(model: nn.Module) -> list[ActQuantizer]:
    """Activation quantizers not owned by a QuantLayer (add and pool inputs)."""
    owned = {id(q) for m in model.modules() if isinstance(m, QuantLayer)
             for q in m.act_quantizers()}
    return [m for m in model.modules() if isinstance(m, ActQuantizer) and id(m) not in owned]


__all__ = ["quantize_op_inputs", "standalone_quantizers"]
