"""When and how much: pruning schedules as Trainer callbacks, and mask keeping.

    sched = AGP(final=0.8, start=0, end=400, every=20, config=lambda r: PruneConfig(
        granularity="unstructured", ratio=r))
    Trainer(model, cfg, data, callbacks=[sched]).fit()

Structured schedules cut the model between steps; the trainer's optimizer then holds the new
tensors (rebuilt by `trainer.rebuild_optimizer()` via the callback). Unstructured schedules
only grow masks, and `KeepMasks` re-zeroes them after every optimizer step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from slimkit.callbacks import Callback
from slimkit.pruning.api import prune
from slimkit.pruning.config import PruneConfig
from slimkit.record import record_of


def agp_ratio(step: int, final: float, start: int, end: int, initial: float = 0.0) -> float:
    """Zhu & Gupta (2017) cubic ramp: s_t = s_f + (s_i − s_f)(1 − (t − t0)/(t1 − t0))³."""
    if step <= start:
        return initial
    if step >= end:
        return final
    frac = (step - start) / (end - start)
    return final + (initial - final) * (1.0 - frac) ** 3


def iterative_ratios(final: float, rounds: int) -> list[float]:
    """Per-round ratios whose *compound* removal is `final` (each round cuts what remains)."""
    keep = (1.0 - final) ** (1.0 / rounds)
    return [1.0 - keep ** (i + 1) for i in range(rounds)]


class KeepMasks(Callback):
    """Re-apply the model's masks after each optimizer step (zeros stay zeros)."""

    def on_step_end(self, trainer) -> None:
        rec = record_of(trainer.model, create=False)
        masks = rec.masks if rec is not None else {}
        if not masks:
            return
        params = dict(trainer.model.named_parameters())
        with torch.no_grad():
            for name, m in masks.items():
                params[name].mul_(m)


class Schedule(Callback):
    """Prune on a timetable. `ratio_at(step)` gives the target; every `every` steps where it
    grew, `config(ratio)` is applied to the trainer's model (unstructured: masks grow in place;
    structured: the model is cut and the optimizer rebuilt). one-shot: every=None, at=step."""

    def __init__(self, ratio_at: Callable[[int], float], config: Callable[[float], PruneConfig],
                 example_inputs, every: int = 1, data=None) -> None:
        self.ratio_at, self.config, self.example = ratio_at, config, example_inputs
        self.every, self.data, self.applied = every, data, 0.0
        self.history: list[tuple[int, float]] = []

    def on_step_end(self, trainer) -> None:
        if trainer.step % self.every:
            return
        r = self.ratio_at(trainer.step)
        if r <= self.applied + 1e-9:
            return

        cfg = self.config(r)
        if cfg.structured:  # cut what remains so the total reaches r
            cfg = _replace_ratio(cfg, 1.0 - (1.0 - r) / (1.0 - self.applied))
        trainer.replace_model(prune(trainer.model, cfg, self.example, data=self.data))
        self.applied = r
        self.history.append((trainer.step, r))


def _replace_ratio(cfg: PruneConfig, ratio: float) -> PruneConfig:
    return cfg.replace(ratio=min(max(ratio, 0.0), 0.999), target_macs=None, target_params=None)


def AGP(final: float, start: int, end: int, config: Callable[[float], PruneConfig],
        example_inputs, every: int = 10, data=None) -> Schedule:  # noqa: N802 — reads as a class
    return Schedule(lambda s: agp_ratio(s, final, start, end), config, example_inputs, every,
                    data)


def OneShot(at: int, ratio: float, config: Callable[[float], PruneConfig],  # noqa: N802
            example_inputs, data=None) -> Schedule:
    return Schedule(lambda s: ratio if s >= at else 0.0, config, example_inputs, 1, data)


def Iterative(final: float, rounds: int, every: int, config: Callable[[float], PruneConfig],  # noqa: N802
              example_inputs, data=None) -> Schedule:
    ratios = iterative_ratios(final, rounds)

    def at(step: int) -> float:
        done = min(step // every, rounds)
        return ratios[done - 1] if done else 0.0
    return Schedule(at, config, example_inputs, every, data)
