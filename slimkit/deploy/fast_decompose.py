"""Skip torch.onnx's decomposition pass when it would change nothing.

torch.onnx.export (dynamo) re-traces the whole exported program to decompose the ATen ops
that have no ONNX translation — the largest part of an export's time (≈ 0.3 s of 0.4 s on the
digits CNN, seconds on a ResNet). A slimkit model lowered for export is usually made of
conv / linear / relu / pool / flatten / slimkit::qdq only, every one of them translated
directly: then the re-trace returns the same graph. Here such a program skips it; eval-mode
`aten.batch_norm` (the one op of a float CNN that needs it) is rewritten in place to the
inference op the decomposition would produce. Anything else — an op without a translation,
a mutated buffer or input, a higher-order op — takes the exporter's own path, as without
slimkit. tests/deploy/test_fast_decompose.py checks the ONNX files match node for node.
"""

from __future__ import annotations

import operator

import torch

_BN = torch.ops.aten.batch_norm.default
_BN_EVAL = torch.ops.aten._native_batch_norm_legit_no_training.default
# runtime shape checks: the exporter removes them after decomposing (remove_assertion_nodes)
_ASSERTS = {torch.ops.aten.sym_constrain_range_for_size.default,
            torch.ops.aten._assert_async.default, torch.ops.aten._assert_async.msg,
            torch.ops.aten._assert_scalar.default,
            torch.ops.aten._assert_tensor_metadata.default}


def _rewrite_eval_batch_norm(gm: torch.fx.GraphModule) -> None:
    """aten.batch_norm(x, w, b, mean, var, training=False, momentum, eps, cudnn) →
    _native_batch_norm_legit_no_training(x, w, b, mean, var, momentum, eps)[0]."""
    for node in list(gm.graph.nodes):
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


def _needless(ep: torch.export.ExportedProgram, implemented: set) -> bool:
    sig = ep.graph_signature
    if getattr(sig, "buffers_to_mutate", None) or getattr(sig, "user_inputs_to_mutate", None):
        return False
    for node in ep.graph.nodes:
        if node.op != "call_function":
            continue
        t = node.target
        schema = getattr(t, "_schema", None)
        if schema is not None and schema.is_mutable:
            return False  # an in-place op: only the re-trace functionalizes it
        if t is operator.getitem or t in implemented or t in _ASSERTS:
            continue
        if t is _BN and node.args[5] is False and len(node.args) == 9 and not node.kwargs:
            continue
        return False
    return True


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
                if _needless(exported_program, implemented):
                    _rewrite_eval_batch_norm(exported_program.graph_module)
                    return exported_program
            except Exception:  # noqa: BLE001 — internals moved: the exporter's own path
                pass
            return self.orig(exported_program, registry)

        _fx_passes.decompose_with_registry = decompose_with_registry
        return self

    def __exit__(self, *exc):
        if self.mod is not None:
            self.mod.decompose_with_registry = self.orig
