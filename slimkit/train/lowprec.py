"""Low-precision training pieces: stochastic rounding of weights and a progressive schedule.

Stochastic rounding (SR) to bfloat16: add uniform noise below bf16's last mantissa bit, then
truncate. E[SR(w)] = w, so an update smaller than half a bf16 step still moves the weight in
expectation — with round-to-nearest it is lost every time (Gupta et al. 2015).
"""

from __future__ import annotations

import torch

from slimkit.errors import ConfigError
from slimkit.quant import prepare_qat  # the quantization layer sits below training
from slimkit.train.trainer import Callback


def round_bf16(x: torch.Tensor, stochastic: bool = True,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """float32 → the nearest bf16 value below or above (stochastically, unbiased), as float32."""
    if x.dtype != torch.float32:
        raise ConfigError(f"round_bf16 takes float32 tensors, not {x.dtype}")
    if not stochastic:
        return x.to(torch.bfloat16).to(torch.float32)
    bits = x.view(torch.int32)
    noise = torch.randint(0, 1 << 16, x.shape, dtype=torch.int32, generator=generator,
                          device=generator.device if generator is not None else x.device)
    noise = noise.to(x.device)
    # adding noise to the 16 bits bf16 drops, then clearing them, rounds up with probability
    # (dropped bits / 2^16): exactly the distance to the lower neighbour
    out = ((bits + noise) & ~0xFFFF).view(torch.float32)
    return torch.where(torch.isfinite(x), out, x)


class BF16Weights(Callback):
    """Keep every floating parameter on the bf16 grid after each optimizer step (weights
    stored in 16 bits), rounding stochastically by default."""

    def __init__(self, stochastic: bool = True, seed: int = 0) -> None:
        self.stochastic = stochastic
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def on_step_end(self, trainer) -> None:
        for p in trainer.model.parameters():
            if p.dtype == torch.float32:
                p.copy_(round_bf16(p, self.stochastic, self.generator))


class ProgressivePrecision(Callback):
    """fp32 until `bf16_from` epochs, bf16 autocast until `qat_from`, then int8 (or any
    config's) fake-quant QAT through prepare_qat, for the remaining epochs."""

    def __init__(self, bf16_from: int, qat_from: int, qat_config, example_inputs) -> None:
        if not 0 <= bf16_from <= qat_from:
            raise ConfigError(f"ProgressivePrecision needs 0 ≤ bf16_from ({bf16_from}) ≤ "
                              f"qat_from ({qat_from})")
        self.bf16_from, self.qat_from = bf16_from, qat_from
        self.qat_config, self.example_inputs = qat_config, example_inputs
        self.phases: list[tuple[int, str]] = []

    def on_train_start(self, trainer) -> None:
        if trainer.world > 1:
            raise ConfigError("ProgressivePrecision swaps the model mid-run: single process only")
        self._apply(trainer)

    def on_epoch_end(self, trainer) -> None:
        self._apply(trainer)

    def _apply(self, trainer) -> None:
        e = trainer.epoch
        if e >= self.qat_from and not self._phase_is("int8 QAT"):
            trainer.precision = "fp32"
            trainer.model = trainer.module = prepare_qat(trainer.model, self.qat_config,
                                                         self.example_inputs, inplace=True)
            self.phases.append((e, "int8 QAT"))
        elif self.bf16_from <= e < self.qat_from and not self._phase_is("bf16"):
            trainer.precision = "bf16"
            self.phases.append((e, "bf16"))

    def _phase_is(self, name: str) -> bool:
        return bool(self.phases) and self.phases[-1][1] == name


__all__ = ["BF16Weights", "ProgressivePrecision", "round_bf16"]
