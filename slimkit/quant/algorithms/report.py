"""What an algorithm did: per-layer results, the layers it skipped (and why), notes.

Every algorithm returns one of these beside the model; the model's record (slimkit.record)
gets one step per algorithm — its config and the structure it changed, so sk.save / sk.load
replay it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LayerResult:
    name: str
    detail: str  # one human line: what was chosen for this layer
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class AlgorithmReport:
    algorithm: str
    config: dict
    applied: tuple[LayerResult, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (layer or pair, why it was left alone)
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    # what the step changed in the module tree, JSON-able: sk.load replays it (steps.py)
    structure: dict = field(default_factory=dict)

    def summary(self) -> str:
        return (f"{self.algorithm}: {len(self.applied)} applied, {len(self.skipped)} skipped"
                f" in {self.seconds:.2f} s")

    def to_dict(self) -> dict:
        def clean(v):
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {"algorithm": self.algorithm, "config": self.config, "seconds": self.seconds,
                "applied": [{"name": r.name, "detail": r.detail,
                             "metrics": {k: clean(v) for k, v in r.metrics.items()}}
                            for r in self.applied],
                "skipped": [{"name": n, "reason": why} for n, why in self.skipped],
                "notes": list(self.notes), "structure": self.structure}

    def __str__(self) -> str:
        lines = [self.summary()]
        lines += [f"  {r.name}: {r.detail}" for r in self.applied]
        lines += [f"  skipped {n}: {why}" for n, why in self.skipped]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def config_dict(config) -> dict:
    """A config as plain data (from_dict's inverse), for reports and caches."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


@dataclass(frozen=True)
class PTQReport:
    """Reports of every step of `ptq()`, in order, and the plan of the final model."""

    steps: tuple[AlgorithmReport, ...]
    plan: object | None = None  # the QuantPlan

    def to_dict(self) -> dict:
        return {"steps": [s.to_dict() for s in self.steps],
                "plan": None if self.plan is None else self.plan.to_dict()}

    def __str__(self) -> str:
        return "\n".join(str(s) for s in self.steps)
