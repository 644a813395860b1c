"""check_parity: slimkit's simulated model vs a runtime's integer execution of its export."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from slimkit.deploy.runtimes import load


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
                 step: float | None = None) -> Parity:
    """Run `inputs` (a tensor, or an iterable of batches) through the simulated model and
    the runtime. `step` is the quantization step of the output; by default the output
    quantizer's scale if the last layer has one, else one int8 step of the reference
    output's range, (max − min) / 255."""
    session = load(onnx_path, runtime)
    batches = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
    batches = [b[0] if isinstance(b, (tuple, list)) else b for b in batches]
    ref = np.concatenate([model.eval()(b).numpy() for b in batches])
    out = np.concatenate([session.run(b) for b in batches])
    return compare(ref, out, step if step is not None else _default_step(model, ref))


def _default_step(model: nn.Module, ref: np.ndarray) -> float:
    from slimkit.quant.flows import quant_layers

    layers = quant_layers(model)
    if layers and layers[-1].output_quantizer is not None:
        return float(layers[-1].output_quantizer.scale.max())
    return float(ref.max() - ref.min()) / 255 or 1e-6
