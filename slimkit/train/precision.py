"""Low precision only where the CPU runs it fast, or a loud warning.

On a CPU without fp16 arithmetic (x86 before AVX512-FP16: every AMD EPYC so far, Intel before
Sapphire Rapids) torch's CPU autocast emulates every fp16 op by conversions: a training step of
an MLP was measured 17.5× slower than fp32 on an AMD EPYC Zen 4, whose AVX512-BF16 made the
same step in bf16 1.6× faster than fp32 (benchmarks/train_precision.py). bf16 without bf16
units converts every op's inputs too. A GPU device is not checked (its tensor cores run both).
"""

from __future__ import annotations

import warnings

import torch

from slimkit.target import Target, resolve_target


class PrecisionWarning(UserWarning):
    """Training asked for a precision this CPU has no arithmetic units for."""


def slow_precision(precision: str, device: torch.device | str = "cpu",
                   target: Target | str | None = "auto") -> str | None:
    """Why `precision` is slow on `device` here, naming what to use instead; None where it has
    arithmetic units (or is fp32, or the device is not a CPU)."""
    if torch.device(device).type != "cpu" or precision == "fp32":
        return None
    cpu = resolve_target(target)
    if cpu.float_units(precision):
        return None
    bf16 = cpu.float_units("bf16")
    instead = (f"precision='bf16' (this CPU has {' / '.join(bf16)})" if bf16 and
               precision != "bf16" else "precision='fp32'")
    units = "AVX512-FP16" if precision == "fp16" else "AVX512-BF16 or AMX-BF16"
    return (f"precision={precision!r} on {cpu.model} ({cpu.isa()}): this CPU has no "
            f"{precision} arithmetic ({units}), so autocast emulates every op by conversions "
            "and trains several times slower than fp32 (fp16 measured 17.5× slower on an AMD "
            f"EPYC); use {instead}")


def warn_if_slow(precision: str, device: torch.device | str = "cpu",
                 stacklevel: int = 3) -> str | None:
    """slow_precision's reason as a PrecisionWarning (and returned), or None."""
    why = slow_precision(precision, device)
    if why:
        warnings.warn(PrecisionWarning(why), stacklevel=stacklevel)
    return why


__all__ = ["PrecisionWarning", "slow_precision", "warn_if_slow"]
