"""check_parity: slimkit's simulated model vs a runtime's integer execution of its export."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from slimkit.deploy.runtimes import session
from slimkit.target import Target, resolve_target

PARITY_FLOOR = 0.99  # fraction of outputs within one quantization step below which we warn


class ParityWarning(UserWarning):
    """The runtime's integer execution disagrees with slimkit's simulation."""


@dataclass
class Parity:
    max_abs_diff: float
    max_diff_steps: float  # in units of the output quantization step (or of `step`)
    within_one_step: float  # fraction of outputs within one step
    cosine: float  # mean per-sample cosine similarity
    top1_agreement: float  # fraction of samples with the same argmax

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (f"top-1 agreement {100 * self.top1_agreement:.2f}%, cosine {self.cosine:.6f}, "
                f"max |diff| {self.max_abs_diff:.4g} ({self.max_diff_steps:.2f} steps), "
                f"{100 * self.within_one_step:.2f}% within one step")


def compare(ref: np.ndarray, out: np.ndarray, step: float) -> Parity:
    ref, out = ref.reshape(ref.shape[0], -1), out.reshape(out.shape[0], -1)
    diff = np.abs(ref - out)
    cos = (ref * out).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1) + 1e-30)
    within = float((diff <= step * 1.0001).mean())
    return Parity(float(diff.max()), float(diff.max() / step), within, float(cos.mean()),
                  float((ref.argmax(1) == out.argmax(1)).mean()))


@torch.no_grad()
def check_parity(model: nn.Module, onnx_path, inputs, runtime: str = "ort",
                 step: float | None = None, target: str | Target | None = "auto") -> Parity:
    """Run `inputs` (a tensor, or an iterable of batches) through the simulated model and
    the runtime. `step` is the quantization step of the output; by default the output
    quantizer's scale if the last layer has one, else one int8 step of the reference
    output's range, (max − min) / 255. Fewer than 99% of outputs within one step warns
    (ParityWarning) with the likely cause on `target` (the machine running this check)."""
    sess = session(onnx_path, runtime)
    batches = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
    batches = [b[0] if isinstance(b, (tuple, list)) else b for b in batches]
    ref = np.concatenate([model.eval()(b).numpy() for b in batches])
    out = np.concatenate([sess.run(b) for b in batches])
    par = compare(ref, out, step if step is not None else _default_step(model, ref))
    if par.within_one_step < PARITY_FLOOR:
        cause = likely_cause(onnx_path, runtime, resolve_target(target), par)
        warnings.warn(ParityWarning(
            f"{runtime} agrees with slimkit's simulation on only "
            f"{100 * par.within_one_step:.2f}% of outputs within one step (expected ≥ "
            f"{100 * PARITY_FLOOR:.0f}%); likely cause: {cause}"), stacklevel=3)
    return par


def likely_cause(onnx_path, runtime: str, target: Target, par: Parity | None = None) -> str:
    """The most probable reason a runtime disagrees with the simulation on this machine."""
    from slimkit.deploy.emulate import saturation_report

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
    from slimkit.quant.flows import quant_layers

    layers = quant_layers(model)
    if layers and layers[-1].output_quantizer is not None:
        return float(layers[-1].output_quantizer.scale.max())
    return float(ref.max() - ref.min()) / 255 or 1e-6
