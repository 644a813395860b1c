"""PruneConfig: what to remove (granularity), how much (ratio or a MACs / params target), how
to rank it (importance), and per-layer rules. Validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

from slimkit.errors import ConfigError, check_choice
from slimkit.pruning.rounding import LatencyRounding

GRANULARITIES = {"channel", "filter", "neuron", "head", "depth", "unstructured", "block", "nm"}
ELEMENTWISE = ("unstructured", "block", "nm")  # masks in place: the shapes stay
IMPORTANCES = {"l1", "l2", "taylor", "bn_gamma", "mask", "random"}
DEPTH_IMPORTANCES = ("l1", "l2", "mask", "random")  # pruning/depth.py says what each means


@dataclass(frozen=True)
class PruneRule:
    """Layers (glob on the module name, e.g. 'fc', 'features.*') whose *output* channels get
    `ratio` instead of the default, or are kept whole with skip=True. Last match wins."""

    pattern: str
    ratio: float | None = None
    skip: bool = False

    def __post_init__(self) -> None:
        if not self.skip and self.ratio is None:
            raise ConfigError(f"PruneRule('{self.pattern}') needs ratio=… or skip=True")
        if self.ratio is not None:
            _check_ratio(f"PruneRule('{self.pattern}').ratio", self.ratio)


@dataclass(frozen=True)
class PruneConfig:
    """
    granularity: channel (conv filters, linear neurons, hidden dims), filter (conv only),
        neuron (linear only), head (attention heads), depth (whole residual blocks, x + f(x),
        replaced by the identity: pruning/depth.py), unstructured (single weights),
        block (zeros in whole `block`-shaped tiles of each weight's (out, in·k·k) matrix — what
        block-sparse kernels, BSR, skip), nm (N:M, e.g. 2:4, along the input dim).
    ratio: fraction of each group's channels to remove — or give target_macs / target_params,
        the fraction of the model's MACs / params to remove (structured granularities).
    scope: uniform (every group the same ratio) or global (one importance threshold across
        groups, each importance normalised by its group's mean).
    round_to: kept channel counts are multiples of this int (8 or 16 suit SIMD kernels), or
        "auto" / a LatencyRounding: the counts where this machine's runtime gets faster,
        measured once per machine (int8 on OpenVINO where installed, by default).
    max_ratio: no group loses more than this fraction (global scope).
    unknown_ops: error (raise on an op the dependency rules do not know) or freeze.
    allow_partial: accept a result that removes less than half of the target (every group
        frozen, skipped or kept whole); by default that is a PruneError listing why.
    """

    granularity: str = "channel"
    ratio: float | None = None
    target_macs: float | None = None
    target_params: float | None = None
    importance: str = "l1"
    scope: str = "uniform"
    round_to: int | str | LatencyRounding = 1
    max_ratio: float = 0.9
    n: int = 2
    m: int = 4
    block: tuple[int, int] = (16, 16)
    rules: tuple[PruneRule, ...] = ()
    unknown_ops: str = "error"
    seed: int = 0
    allow_partial: bool = False

    def __post_init__(self) -> None:
        check_choice("PruneConfig.granularity", self.granularity, GRANULARITIES)
        check_choice("PruneConfig.importance", self.importance, IMPORTANCES)
        check_choice("PruneConfig.scope", self.scope, {"uniform", "global"})
        check_choice("PruneConfig.unknown_ops", self.unknown_ops, {"error", "freeze"})
        targets = [t for t in ("ratio", "target_macs", "target_params")
                   if getattr(self, t) is not None]
        if self.granularity == "nm":
            if not 0 < self.n < self.m:
                raise ConfigError(f"PruneConfig n={self.n}, m={self.m}: need 0 < n < m")
            return
        if len(targets) != 1:
            raise ConfigError(f"PruneConfig needs exactly one of ratio, target_macs, "
                              f"target_params (got {targets or 'none'})")
        for t in targets:
            _check_ratio(f"PruneConfig.{t}", getattr(self, t))
        if self.granularity == "depth" and self.importance not in DEPTH_IMPORTANCES:
            raise ConfigError(f"PruneConfig.importance='{self.importance}': granularity='depth' "
                              f"ranks whole blocks by one of {DEPTH_IMPORTANCES}")
        if not self.structured and self.importance == "mask":
            raise ConfigError("importance='mask' (loss change of masking a channel) is for "
                              "structured granularities, e.g. 'head'")
        if self.granularity in ("unstructured", "block") and targets[0] != "ratio":
            raise ConfigError(f"granularity='{self.granularity}' takes ratio=…; MACs and "
                              "params targets need a structured granularity")
        if self.granularity == "block" and (
                len(self.block) != 2 or not all(isinstance(b, int) and b >= 1
                                                for b in self.block)):
            raise ConfigError(f"PruneConfig.block={self.block!r} must be two ints ≥ 1 "
                              "(rows, columns of a tile), e.g. (16, 16)")
        _check_ratio("PruneConfig.max_ratio", self.max_ratio)
        if self.round_to == "auto":
            object.__setattr__(self, "round_to", LatencyRounding())  # parsed once, here
        elif isinstance(self.round_to, dict):  # from a record / JSON
            object.__setattr__(self, "round_to", LatencyRounding(**self.round_to))
        if not isinstance(self.round_to, LatencyRounding) and (
                isinstance(self.round_to, bool) or not isinstance(self.round_to, int)
                or self.round_to < 1):
            raise ConfigError(f"PruneConfig.round_to={self.round_to!r} must be an int ≥ 1, "
                              "'auto' or a LatencyRounding")
        object.__setattr__(self, "rules", tuple(self.rules))

    @property
    def structured(self) -> bool:
        return self.granularity not in ELEMENTWISE


def _check_ratio(field: str, v) -> None:
    if not isinstance(v, int | float) or not 0.0 <= v < 1.0:
        raise ConfigError(f"{field}={v!r} must be a fraction in [0, 1): the share to remove")
