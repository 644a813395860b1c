"""SearchConfig: everything a search needs, typed, validated on construction, and buildable from
a plain dict (a recipe stage's YAML) with errors that name the field path."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimkit.errors import ConfigError, check_choice
from slimkit.search.space import COSTS, Constraint
from slimkit.search.strategies import STRATEGIES, EvolutionConfig, ReinforceConfig

# objective → direction; the metric (accuracy, or the validation cross-entropy 'loss') comes
# first
METRICS = {"accuracy": "maximize", "loss": "minimize"}
OBJECTIVES = {**METRICS, "params": "minimize", "macs": "minimize", "latency_ms": "minimize"}
EVALUATORS = ("proxy", "supernet")
DATASETS = ("digits", "digits32")


@dataclass(frozen=True)
class ProxyConfig:
    """Short training of each candidate (from scratch, or fine-tuning a pruned model):
    `epochs` over `data_fraction` of the search's training split; epochs=0 evaluates as is
    (after re-estimating BatchNorm statistics)."""

    epochs: int = 1
    data_fraction: float = 1.0
    lr: float = 3e-3
    batch_size: int = 64

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"ProxyConfig.epochs={self.epochs!r} must be an int ≥ 0")
        if not 0 < self.data_fraction <= 1:
            raise ConfigError(f"ProxyConfig.data_fraction={self.data_fraction!r} must be in "
                              "(0, 1]")
        if self.lr <= 0 or self.batch_size < 1:
            raise ConfigError(f"ProxyConfig: need lr > 0 and batch_size ≥ 1, got {self}")


@dataclass(frozen=True)
class SupernetConfig:
    """One-shot weight sharing: train once (sandwich rule: the largest, the smallest and
    `random_subnets` random sub-networks per step, in-place distillation from the largest),
    then score each candidate with its inherited weights after BN recalibration."""

    epochs: int = 20  # what benchmarks/nas.py measured
    lr: float = 3e-3
    batch_size: int = 64
    random_subnets: int = 2
    calib_batches: int = 4
    distill: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.random_subnets < 0 or self.calib_batches < 1:
            raise ConfigError(f"SupernetConfig: need epochs ≥ 1, random_subnets ≥ 0, "
                              f"calib_batches ≥ 1; got {self}")


@dataclass(frozen=True)
class LatencyConfig:
    """How latency is costed: the per-layer table on `runtime` (fp32) at `batch`, `threads`,
    calibrated on `calibrate` random networks of the space measured end to end (once per
    machine, space, batch and threads: cached with the table; 0: Σ of the layers' kernels,
    which misses what a whole run adds — up to 1.8× high for MobileNetV2-like nets at
    batch 1)."""

    batch: int = 1
    threads: int = 2
    runtime: str = "ort"
    cache_dir: str | None = None  # None: $SLIMKIT_CACHE or ~/.cache/slimkit
    calibrate: int = 10

    def __post_init__(self) -> None:
        check_choice("LatencyConfig.runtime", self.runtime, {"ort"})
        if self.batch < 1 or self.threads < 1:
            raise ConfigError(f"LatencyConfig: batch and threads must be ≥ 1, got {self}")
        if self.calibrate != 0 and self.calibrate < 3:
            raise ConfigError(f"LatencyConfig.calibrate={self.calibrate!r}: give 0 (no "
                              "calibration) or ≥ 3 networks (≥ 8 fit a per-layer term)")


@dataclass(frozen=True)
class SearchConfig:
    space: str = "digits"  # registry name, 'pkg.module:function', or 'prune' (needs a model)
    space_options: dict = field(default_factory=dict)
    data: str = "digits"
    strategy: str = "tpe"
    n_trials: int = 60  # completed (trained) candidates; rejected and failed ones do not count
    objectives: tuple[str, ...] = ("accuracy",)
    constraints: tuple[Constraint, ...] = ()
    evaluator: str = "proxy"
    proxy: ProxyConfig = ProxyConfig()
    supernet: SupernetConfig = SupernetConfig()
    evolution: EvolutionConfig = EvolutionConfig()
    reinforce: ReinforceConfig = ReinforceConfig()
    latency: LatencyConfig = LatencyConfig()
    retrain: ProxyConfig = ProxyConfig(epochs=20)  # top-k from scratch on the full train set
    top_k: int = 3
    seed: int = 0
    run_dir: Path | None = None  # storage (SQLite) and exported models; None: no files
    storage: str | None = None  # None: sqlite in run_dir; 'journal'; 'journal:PATH'; an RDB URL
    study_name: str = "search"
    max_failures: int = 20  # trials failed by a builder / evaluator error before giving up
    max_rejections: int = 500  # consecutive constraint rejections before giving up
    # random / evolution / REINFORCE redraw a candidate that breaks a constraint (its costs
    # are computed without training) up to this many times per trial; 1: never redraw
    feasible_draws: int = 32
    heartbeat_s: float = 5.0  # a running trial whose worker is silent 3× this long is lost

    def __post_init__(self) -> None:
        check_choice("SearchConfig.strategy", self.strategy, STRATEGIES)
        check_choice("SearchConfig.evaluator", self.evaluator, EVALUATORS)
        check_choice("SearchConfig.data", self.data, DATASETS)
        object.__setattr__(self, "objectives", tuple(self.objectives))
        object.__setattr__(self, "constraints", tuple(self.constraints))
        if not self.objectives:
            raise ConfigError("SearchConfig.objectives is empty: give at least 'accuracy'")
        for o in self.objectives:
            check_choice("SearchConfig.objectives[]", o, OBJECTIVES)
        if len(set(self.objectives)) != len(self.objectives):
            raise ConfigError(f"SearchConfig.objectives={self.objectives} repeats an objective")
        metrics = [o for o in self.objectives if o in METRICS]
        if len(metrics) != 1 or self.objectives[0] not in METRICS:
            raise ConfigError(f"SearchConfig.objectives={list(self.objectives)}: the first "
                              f"objective is the one metric ({' or '.join(METRICS)}); costs "
                              f"follow")
        if self.strategy == "nsga2" and len(self.objectives) < 2:
            raise ConfigError("SearchConfig.strategy='nsga2' needs ≥ 2 objectives, e.g. "
                              "('accuracy', 'latency_ms')")
        for name in ("n_trials", "top_k", "max_failures", "max_rejections", "feasible_draws"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < (0 if name == "top_k" else 1):
                raise ConfigError(f"SearchConfig.{name}={v!r} must be a positive int")
        if self.run_dir is not None:
            object.__setattr__(self, "run_dir", Path(self.run_dir))
        if self.heartbeat_s <= 0:
            raise ConfigError(f"SearchConfig.heartbeat_s={self.heartbeat_s} must be > 0")

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
        d = dataclasses.asdict(self)
        d["run_dir"] = str(self.run_dir) if self.run_dir is not None else None
        d["objectives"], d["constraints"] = list(self.objectives), [
            {"cost": c.cost, "max": c.max} for c in self.constraints]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchConfig:
        """From plain data (YAML): nested dicts for the sub-configs; constraints as
        {'cost': 'latency_ms', 'max': 2.0} or 'latency_ms <= 2.0'."""
        return _build(cls, d, "search")


_NESTED = {"proxy": ProxyConfig, "supernet": SupernetConfig, "evolution": EvolutionConfig,
           "reinforce": ReinforceConfig, "latency": LatencyConfig, "retrain": ProxyConfig}


def _constraint(v, path: str) -> Constraint:
    if isinstance(v, Constraint):
        return v
    if isinstance(v, str):
        cost, sep, limit = v.partition("<=")
        try:
            return Constraint(cost.strip(), float(limit)) if sep else _bad(v, path)
        except ValueError:
            _bad(v, path)
    if isinstance(v, dict):
        return _build(Constraint, v, path)
    _bad(v, path)


def _bad(v, path):
    raise ConfigError(f"{path}={v!r}: write a constraint as 'COST <= MAX' or "
                      f"{{cost: COST, max: MAX}} with COST one of {list(COSTS)}")


def _build(cls, d, path: str):
    if not isinstance(d, dict):
        raise ConfigError(f"{path} must be a mapping, got {type(d).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - fields)
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {unknown}; allowed: {sorted(fields)}")
    kw = {}
    for k, v in d.items():
        if cls is SearchConfig and k in _NESTED and isinstance(v, dict):
            v = _build(_NESTED[k], v, f"{path}.{k}")
        elif cls is SearchConfig and k == "constraints":
            v = tuple(_constraint(c, f"{path}.constraints[{i}]") for i, c in enumerate(v))
        elif cls is SearchConfig and k == "objectives" and isinstance(v, str):
            v = (v,)
        kw[k] = v
    try:
        return cls(**kw)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e
    except TypeError as e:
        raise ConfigError(f"{path}: {e}") from e
