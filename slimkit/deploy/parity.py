"""check_parity: slimkit's simulated model vs a runtime's integer execution of its export."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from slimkit.batch import as_args, call, inputs_of
from slimkit.deploy.emulate import saturation_report
from slimkit.deploy.runtimes import session
from slimkit.quant.flows import quant_layers
from slimkit.target import Target, resolve_target
from slimkit.task import Task

PARITY_FLOOR = 0.99  # fraction of outputs within one quantization step below which we warn


class ParityWarning(UserWarning):
    """The runtime's integer execution disagrees with slimkit's simulation."""


@dataclass
class Parity:
    max_abs_diff: float
    max_diff_steps: float  # in units of the output quantization step (or of `step`)
    within_one_step: float  # fraction of outputs within one step
    cosine: float  # mean per-sample cosine similarity
    top1_agreement: float  # fraction of samples (tokens) with the same argmax
    cosine_min: float = 1.0  # the least similar sample
    rel_error: float = 0.0  # ‖out − ref‖ / ‖ref‖
    label_agreement: float = 1.0  # multi-label: fraction of (sample, label) signs alike
    task: str = "classification"  # which of these the summary shows (slimkit.task)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        shown = {"top1_agreement": f"top-1 agreement {100 * self.top1_agreement:.2f}%",
                 "cosine": f"cosine {self.cosine:.6f}",
                 "cosine_min": f"cosine min {self.cosine_min:.6f}",
                 "rel_error": f"relative error {self.rel_error:.3g}",
                 "max_abs_diff": f"max |diff| {self.max_abs_diff:.4g}",
                 "label_agreement": f"label agreement {100 * self.label_agreement:.2f}%"}
        keys = Task.of(self.task).parity_keys() if self.task != "custom" else ("rel_error",
                                                                                "cosine")
        return ", ".join(shown[k] for k in keys) + (
            f", max {self.max_diff_steps:.2f} steps, {100 * self.within_one_step:.2f}% "
            "within one step")


def compare(ref: np.ndarray, out: np.ndarray, step: float,
            task: str = "classification") -> Parity:
    """Agreement of `out` with `ref`; top-1 over the last axis (classes, per token)."""
    classes = ref.shape[-1] if ref.ndim > 1 else 1
    top1 = float((ref.argmax(-1) == out.argmax(-1)).mean()) if classes > 1 else 1.0
    ref, out = ref.reshape(ref.shape[0], -1), out.reshape(out.shape[0], -1)
    diff = np.abs(ref - out)
    cos = (ref * out).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1) + 1e-30)
    within = float((diff <= step * 1.0001).mean())
    rel = float(np.linalg.norm(ref - out) / max(float(np.linalg.norm(ref)), 1e-30))
    labels = float(((ref > 0) == (out > 0)).mean())
    return Parity(float(diff.max()), float(diff.max() / step), within, float(cos.mean()),
                  top1, float(cos.min()), rel, labels, task)


@torch.no_grad()
def check_parity(model: nn.Module, onnx_path, inputs, runtime: str = "ort",
                 step: float | None = None, target: str | Target | None = "auto",
                 task: Task | str = "classification") -> Parity:
    """Run `inputs` (a tensor, or an iterable of batches of any form batch.py accepts)
    through the simulated model and the runtime. `step` is the quantization step of the
    output; by default the output quantizer's scale if the last layer has one, else one int8
    step of the reference output's range, (max − min) / 255. Fewer than 99% of outputs
    within one step warns (ParityWarning) with the likely cause on `target` (the machine
    running this check). `task` picks what the summary shows: top-1 agreement for a
    classifier, relative error for a regressor, cosine for an embedding."""
    sess = session(onnx_path, runtime)
    batches = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
    xs = [inputs_of(b) for b in batches]
    ref = np.concatenate([call(model.eval(), x).numpy() for x in xs])
    out = np.concatenate([sess.run(as_args(x)) for x in xs])
    kind = task.kind if isinstance(task, Task) else task
    par = compare(ref, out, step if step is not None else _default_step(model, ref), kind)
    if par.within_one_step < PARITY_FLOOR:
        cause = likely_cause(onnx_path, runtime, resolve_target(target), par)
        warnings.warn(ParityWarning(
            f"{runtime} agrees with slimkit's simulation on only "
            f"{100 * par.within_one_step:.2f}% of outputs within one step (expected ≥ "
            f"{100 * PARITY_FLOOR:.0f}%); likely cause: {cause}"), stacklevel=3)
    return par


def likely_cause(onnx_path, runtime: str, target: Target, par: Parity | None = None) -> str:
    """The most probable reason a runtime disagrees with the simulation on this machine."""
    if target.u8s8_pairs_saturate:
        bad = [s.weight for s in saturation_report(onnx_path) if s.saturates]
        if bad:
            return (f"{target.model} has no VNNI: its int8 kernels add u8×s8 pairs in int16 "
                    f"and saturate on the 8-bit weights of {len(bad)} layer(s) ({bad[0]}, …); "
                    "re-quantize with target='auto' (7-bit weights, exact here)")
    if par is not None and par.cosine >= 0.999 and par.top1_agreement >= 0.99:
        return (f"none that matters (cosine {par.cosine:.5f}, top-1 agreement "
                f"{100 * par.top1_agreement:.1f}%): intermediate requantizations round a tie "
                "one step apart here and there (float32 sums in the simulation, int32 in the "
                "kernel) and the differences drift through the layers of a deep network")
    if runtime == "openvino" and {"amx_bf16", "avx512_bf16"} & target.features:
        return ("OpenVINO may run float parts of the graph in bf16 on this CPU "
                "(INFERENCE_PRECISION_HINT=f32 keeps fp32)")
    return ("the runtime left some layers in float or rounds requantization differently; "
            "compare the plan with the exported graph (QDQ pairs around each int8 layer)")


def _default_step(model: nn.Module, ref: np.ndarray) -> float:
    layers = quant_layers(model)
    if layers and layers[-1].output_quantizer is not None:
        return float(layers[-1].output_quantizer.scale.max())
    return float(ref.max() - ref.min()) / 255 or 1e-6
