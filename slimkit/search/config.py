"""SearchConfig: everything a search needs, typed, validated on construction, and buildable from
a plain dict (a recipe stage's YAML) with errors that name the field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, ValidationError, field_validator, model_validator

from slimkit.config import Config, explain
from slimkit.errors import ConfigError
from slimkit.search.space import COSTS, Constraint
from slimkit.search.strategies import STRATEGIES, EvolutionConfig, ReinforceConfig

# objective → direction; the metric (accuracy, or the validation cross-entropy 'loss') comes
# first
METRICS = {"accuracy": "maximize", "loss": "minimize"}
OBJECTIVES = {**METRICS, "params": "minimize", "macs": "minimize", "latency_ms": "minimize"}
EVALUATORS = ("proxy", "supernet")
DATASETS = ("digits", "digits32")


Strategy = Literal["random", "evolution", "reinforce", "tpe", "nsga2"]
Objective = Literal["accuracy", "loss", "params", "macs", "latency_ms"]


class ProxyConfig(Config):
    """Short training of each candidate (from scratch, or fine-tuning a pruned model):
    `epochs` over `data_fraction` of the search's training split; epochs=0 evaluates as is
    (after re-estimating BatchNorm statistics)."""

    epochs: int = Field(1, ge=0)
    """Training epochs per candidate."""
    data_fraction: float = Field(1.0, gt=0, le=1)
    """Share of the training split used."""
    lr: float = Field(3e-3, gt=0)
    """Learning rate."""
    batch_size: int = Field(64, ge=1)
    """Batch size."""


class SupernetConfig(Config):
    """One-shot weight sharing: train once (sandwich rule: the largest, the smallest and
    `random_subnets` random sub-networks per step, in-place distillation from the largest),
    then score each candidate with its inherited weights after BN recalibration."""

    epochs: int = Field(20, ge=1)
    """Supernet training epochs (what benchmarks/nas.py measured)."""
    lr: float = Field(3e-3, gt=0)
    """Learning rate."""
    batch_size: int = Field(64, ge=1)
    """Batch size."""
    random_subnets: int = Field(2, ge=0)
    """Random sub-networks trained per step beside the largest and the smallest."""
    calib_batches: int = Field(4, ge=1)
    """Batches that re-estimate BN statistics per candidate."""
    distill: bool = True
    """In-place distillation from the largest sub-network."""


class LatencyConfig(Config):
    """How latency is costed: the per-layer table on `runtime` (fp32) at `batch`, `threads`,
    calibrated on `calibrate` random networks of the space measured end to end (once per
    machine, space, batch and threads: cached with the table; 0: Σ of the layers' kernels,
    which misses what a whole run adds — up to 1.8× high for MobileNetV2-like nets at
    batch 1)."""

    batch: int = Field(1, ge=1)
    """Batch size the latency is costed at."""
    threads: int = Field(2, ge=1)
    """Threads."""
    runtime: Literal["ort"] = "ort"
    """The runtime whose kernels are timed."""
    cache_dir: str | None = None
    """Where the table is cached (None: $SLIMKIT_CACHE or ~/.cache/slimkit)."""
    calibrate: int = 10
    """Networks measured whole to calibrate the table (0: none; else ≥ 3, ≥ 8 fit a
    per-layer term)."""

    @field_validator("calibrate")
    @classmethod
    def _networks(cls, v):
        if v != 0 and v < 3:
            raise ValueError(f"calibrate={v!r}: give 0 (no calibration) or ≥ 3 networks "
                             "(≥ 8 fit a per-layer term)")
        return v


class SearchConfig(Config):
    """An architecture (or pruning-ratio) search: the space, the strategy, what is measured
    and what is refused, where trials are stored."""

    space: str = "digits"
    """A registry name (digits, mobilenetv2, resnet), 'pkg.module:function', or 'prune' (the
    per-layer ratios of the stage's input model)."""
    space_options: dict = {}
    """Keyword arguments for the space."""
    data: Literal["digits", "digits32"] = "digits"
    """What candidates train on."""
    strategy: Strategy = "tpe"
    """random, evolution, reinforce, tpe (Optuna), nsga2 (Optuna; ≥ 2 objectives)."""
    n_trials: int = Field(60, ge=1)
    """Completed (trained) candidates; rejected and failed ones do not count."""
    objectives: tuple[Objective, ...] = ("accuracy",)
    """The metric first (accuracy, or validation cross-entropy 'loss'), then costs (params,
    macs, latency_ms)."""
    constraints: tuple[Constraint, ...] = ()
    """Refused before training: 'latency_ms <= 2.5' or {cost: latency_ms, max: 2.5}."""
    evaluator: Literal["proxy", "supernet"] = "proxy"
    """How a candidate is scored: short training, or a one-shot supernet."""
    proxy: ProxyConfig = ProxyConfig()
    """The proxy evaluator's training."""
    supernet: SupernetConfig = SupernetConfig()
    """The supernet evaluator's training."""
    evolution: EvolutionConfig = EvolutionConfig()
    """Strategy evolution's population and tournament."""
    reinforce: ReinforceConfig = ReinforceConfig()
    """Strategy reinforce's policy."""
    latency: LatencyConfig = LatencyConfig()
    """How latency_ms is costed."""
    retrain: ProxyConfig = ProxyConfig(epochs=20)
    """The top-k retrained from scratch on the full training set."""
    top_k: int = Field(3, ge=0)
    """Candidates retrained, exported and benchmarked."""
    seed: int = 0
    """Seeds the strategy and the training."""
    run_dir: Path | None = None
    """Storage (SQLite) and exported models; None: no files."""
    storage: str | None = None
    """None: SQLite in run_dir; 'journal'; 'journal:PATH'; or a database URL."""
    study_name: str = "search"
    """The study's name in the storage."""
    max_failures: int = Field(20, ge=1)
    """Trials failed by a builder / evaluator error before giving up."""
    max_rejections: int = Field(500, ge=1)
    """Consecutive constraint rejections before giving up."""
    feasible_draws: int = Field(32, ge=1)
    """random / evolution / reinforce redraw a candidate that breaks a constraint (costs are
    computed without training) up to this many times per trial; 1: never redraw."""
    heartbeat_s: float = Field(5.0, gt=0)
    """A running trial whose worker is silent 3× this long is lost."""

    @field_validator("objectives", mode="before")
    @classmethod
    def _one(cls, v):
        return (v,) if isinstance(v, str) else v

    @field_validator("constraints", mode="before")
    @classmethod
    def _parse(cls, v):
        return tuple(_constraint(c, f"constraints[{i}]") for i, c in enumerate(v or ()))

    @model_validator(mode="after")
    def _consistent(self):
        if not self.objectives:
            raise ValueError("objectives is empty: give at least 'accuracy'")
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objectives={list(self.objectives)} repeats an objective")
        metrics = [o for o in self.objectives if o in METRICS]
        if len(metrics) != 1 or self.objectives[0] not in METRICS:
            raise ValueError(f"objectives={list(self.objectives)}: the first objective is the "
                             f"one metric ({' or '.join(METRICS)}); costs follow")
        if self.strategy == "nsga2" and len(self.objectives) < 2:
            raise ValueError("strategy='nsga2' needs ≥ 2 objectives, e.g. ('accuracy', "
                             "'latency_ms')")
        return self

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o] for o in self.objectives]

    @property
    def needs_latency(self) -> bool:
        return "latency_ms" in self.objectives or any(c.cost == "latency_ms"
                                                      for c in self.constraints)

    def identity(self) -> dict:
        """What a resumed search must share with the stored one (n_trials may grow)."""
        return {"strategy": self.strategy, "objectives": list(self.objectives),
                "constraints": [[c.cost, c.max] for c in self.constraints],
                "evaluator": self.evaluator, "seed": self.seed, "data": self.data}

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "search") -> SearchConfig:
        """From plain data (YAML): nested mappings for the sub-configs; constraints as
        {'cost': 'latency_ms', 'max': 2.0} or 'latency_ms <= 2.0'."""
        if not isinstance(d, dict):
            raise ConfigError(f"{where} must be a mapping, got {type(d).__name__}")
        try:
            return cls.model_validate(d)
        except ValidationError as e:
            raise ConfigError(explain(e, where)) from None


def _constraint(v, path: str):
    if isinstance(v, Constraint | dict):
        return v
    if isinstance(v, str):
        cost, sep, limit = v.partition("<=")
        try:
            if sep:
                return {"cost": cost.strip(), "max": float(limit)}
        except ValueError:
            pass
    raise ValueError(f"{path}={v!r}: write a constraint as 'COST <= MAX' or "
                     f"{{cost: COST, max: MAX}} with COST one of {list(COSTS)}")


if set(get_args(Strategy)) != set(STRATEGIES):  # one list of strategies, declared twice
    raise RuntimeError(f"SearchConfig's Strategy {get_args(Strategy)} must name every "
                       f"registered strategy {sorted(STRATEGIES)}")
