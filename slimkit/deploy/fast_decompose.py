"""Skip torch.onnx's decomposition pass when it would change nothing.

torch.onnx.export (dynamo) re-traces the whole exported program to decompose the ATen ops
that have no ONNX translation — the largest part of an export's time (≈ 0.3 s of 0.4 s on the
digits CNN, seconds on a ResNet). A slimkit model lowered for export is usually made of
conv / linear / relu / pool / flatten / slimkit::qdq only, every one of them translated
directly: then the re-trace returns the same graph. Here such a program skips it, with the
two rewrites the re-trace would make: eval-mode `aten.batch_norm` → the inference op, and an
in-place op on a tensor nothing else reads (ReLU(inplace=True), `out += identity`) → its
functional twin. Anything else — an op without a translation, a mutated buffer or input, an
in-place op on a view or a shared tensor, a higher-order op — takes the exporter's own path,
as without slimkit. tests/deploy/test_fast_decompose.py checks the ONNX files match node for node.
"""

from __future__ import annotations

import operator

import torch

_BN = torch.ops.aten.batch_norm.default
_BN_EVAL = torch.ops.aten._native_batch_norm_legit_no_training.default
# adaptive_avg_pool2d has no translation; ATen decomposes it into a mean over H, W (1×1
# output) or _adaptive_avg_pool2d
_AAP = torch.ops.aten.adaptive_avg_pool2d.default
_MEAN, _AAP_IMPL = torch.ops.aten.mean.dim, torch.ops.aten._adaptive_avg_pool2d.default
# runtime shape checks: the exporter removes them after decomposing (remove_assertion_nodes)
_ASSERTS = {torch.ops.aten.sym_constrain_range_for_size.default,
            torch.ops.aten._assert_async.default, torch.ops.aten._assert_async.msg,
            torch.ops.aten._assert_scalar.default,
            torch.ops.aten._assert_tensor_metadata.default}


def _apply(gm: torch.fx.GraphModule, inplace: dict) -> None:
    """The rewrites the re-trace would have made: each in-place op of `inplace` becomes its
    functional twin; adaptive_avg_pool2d becomes a mean over H, W (output 1×1) or
    _adaptive_avg_pool2d; eval-mode aten.batch_norm(x, w, b, mean, var, False, momentum, eps,
    cudnn) becomes _native_batch_norm_legit_no_training(x, w, b, mean, var, momentum, eps)[0]."""
    for node in list(gm.graph.nodes):
        if node in inplace:
            node.target = inplace[node]
        if node.op == "call_function" and node.target is _AAP:
            x, size = node.args
            node.target, node.args = ((_MEAN, (x, [-1, -2], True)) if list(size) == [1, 1]
                                      else (_AAP_IMPL, (x, size)))
        if node.op != "call_function" or node.target is not _BN:
            continue
        x, w, b, mean, var, _training, momentum, eps, _cudnn = node.args
        with gm.graph.inserting_before(node):
            bn = gm.graph.call_function(_BN_EVAL, (x, w, b, mean, var, momentum, eps))
            bn.meta = dict(node.meta)
            out = gm.graph.call_function(operator.getitem, (bn, 0))
            out.meta = dict(node.meta)
        node.replace_all_uses_with(out)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()


def _functional(op):
    """aten.relu_.default → aten.relu.default; None where there is no such twin."""
    name = op._schema.name.split("::")[-1]
    if not name.endswith("_") or name.startswith("_"):
        return None
    packet = getattr(torch.ops.aten, name[:-1], None)
    return getattr(packet, op._overloadname, None) if packet is not None else None


def _fresh(x, reads: torch.fx.Node, rewritten: dict) -> bool:
    """x is an op's own new tensor (no view of another) that only `reads` uses: changing it
    in place is then the same as not — ReLU(inplace=True) after a conv, `out += identity`."""
    if getattr(x, "op", None) != "call_function" or list(x.users) != [reads]:
        return False
    producer = x.args[0] if x.target is operator.getitem else x
    if producer in rewritten or producer.target is _BN:
        return True
    schema = getattr(producer.target, "_schema", None)
    return schema is not None and not schema.is_mutable and all(
        r.alias_info is None for r in schema.returns)


def _shortcut(ep: torch.export.ExportedProgram, implemented: set) -> dict | None:
    """None when the program needs the re-trace; else the in-place ops to make functional."""
    sig = ep.graph_signature
    if getattr(sig, "buffers_to_mutate", None) or getattr(sig, "user_inputs_to_mutate", None):
        return None
    inplace: dict = {}
    for node in ep.graph.nodes:
        if node.op != "call_function":
            continue
        t = node.target
        schema = getattr(t, "_schema", None)
        if schema is not None and schema.is_mutable:
            twin = _functional(t)
            if twin is None or twin not in implemented or not node.args or not _fresh(
                    node.args[0], node, inplace):
                return None  # only the re-trace functionalizes it
            inplace[node] = twin
            continue
        if t is operator.getitem or t in implemented or t in _ASSERTS:
            continue
        if t is _BN and node.args[5] is False and len(node.args) == 9 and not node.kwargs:
            continue
        if t is _AAP and len(node.args) == 2 and (
                _MEAN if list(node.args[1]) == [1, 1] else _AAP_IMPL) in implemented:
            continue
        return None
    return inplace


class skip_needless_decomposition:
    """Context manager: while active, torch.onnx.export skips the decomposition re-trace of
    programs it would leave unchanged. Any mismatch with this torch's internals: no effect."""

    def __enter__(self):
        try:
            from torch.onnx._internal.exporter import _decomp, _fx_passes
        except ImportError:
            self.mod = None
            return self
        self.mod, self.orig = _fx_passes, _fx_passes.decompose_with_registry

        def decompose_with_registry(exported_program, registry):
            try:
                implemented = set(_decomp.get_onnx_implemented_overloads(registry))
                inplace = _shortcut(exported_program, implemented)
                if inplace is not None:
                    _apply(exported_program.graph_module, inplace)
                    return exported_program
            except Exception:  # noqa: BLE001 — internals moved: the exporter's own path
                pass
            return self.orig(exported_program, registry)

        _fx_passes.decompose_with_registry = decompose_with_registry
        return self

    def __exit__(self, *exc):
        if self.mod is not None:
            self.mod.decompose_with_registry = self.orig
