"""PruneConfig: what to remove (granularity), how much (ratio or a MACs / params target), how
to rank it (importance), and per-layer rules. One typed config (slimkit.config): the Python
API and the recipe's `prune` stage (which adds the pipeline's own fields) share it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from slimkit.config import Config
from slimkit.pruning.rounding import LatencyRounding

Granularity = Literal["channel", "filter", "neuron", "head", "depth", "unstructured", "block",
                      "nm"]
Importance = Literal["l1", "l2", "taylor", "bn_gamma", "mask", "random"]
ELEMENTWISE = ("unstructured", "block", "nm")  # masks in place: the shapes stay
DEPTH_IMPORTANCES = ("l1", "l2", "mask", "random")  # pruning/depth.py says what each means
Fraction = Field(None, ge=0, lt=1)


class PruneRule(Config):
    """Layers (glob on the module name, e.g. 'fc', 'features.*') whose *output* channels get
    `ratio` instead of the default, or are kept whole with skip=True. Last match wins."""

    pattern: str
    """Glob on module names: 'fc', 'features.*', '*.attention'."""
    ratio: float | None = Fraction
    """The share of these layers' output channels to remove, instead of the default."""
    skip: bool = False
    """Keep these layers whole."""

    @model_validator(mode="after")
    def _action(self):
        if not self.skip and self.ratio is None:
            raise ValueError(f"PruneRule('{self.pattern}') needs ratio=… or skip=True")
        return self


class PruneConfig(Config):
    """What sk.prune removes, how much, and how it ranks what it removes."""

    granularity: Granularity = "channel"
    """channel (conv filters, linear neurons, hidden dims), filter (conv only), neuron (linear
    only), head (attention heads), depth (whole residual blocks x + f(x), replaced by the
    identity), unstructured (single weights), block (zeros in whole `block`-shaped tiles of
    each weight's (out, in·k·k) matrix — what block-sparse kernels skip), nm (N:M along the
    input dim, e.g. 2:4)."""
    ratio: float | None = Fraction
    """The share of each group's channels (or weights) to remove."""
    target_macs: float | None = Fraction
    """Or: the share of the model's MACs to remove (structured granularities)."""
    target_params: float | None = Fraction
    """Or: the share of the model's parameters to remove (structured granularities)."""
    importance: Importance = "l1"
    """How channels are ranked: l1 / l2 (magnitude of every coupled weight), taylor
    (|w · ∂L/∂w|, needs data), bn_gamma (|γ|, network slimming), mask (the loss increase when
    the channel or head is masked, on data), random (the baseline)."""
    scope: Literal["uniform", "global"] = "uniform"
    """uniform: every group the same ratio; global: one importance threshold across groups
    (each group's importance normalised by its mean)."""
    round_to: int | Literal["auto"] | LatencyRounding = 1
    """Kept channel counts are multiples of this int (8 or 16 suit SIMD kernels), or 'auto':
    the counts where this machine's runtime gets faster, measured once per machine."""
    max_ratio: float = Field(0.9, gt=0, lt=1)
    """No group loses more than this share (global scope and MACs / params targets)."""
    n: int = Field(2, ge=1)
    """nm: keep n of every m weights."""
    m: int = Field(4, ge=2)
    """nm: the group size along the input dimension."""
    block: tuple[int, int] = (16, 16)
    """block: the tile (rows, columns) zeroed whole — what BSR kernels skip."""
    rules: tuple[PruneRule, ...] = ()
    """Per-layer exceptions: [{pattern: 'fc', skip: true}, {pattern: 'layer4.*', ratio: 0.3}];
    the last matching rule wins."""
    unknown_ops: Literal["error", "freeze"] = "error"
    """An op the dependency rules do not know: error (named), or freeze its channels."""
    seed: int = 0
    """Seeds importance='random'."""
    allow_partial: bool = False
    """Accept a cut that removes less than half its target (groups frozen, skipped or kept
    whole); by default that is a PruneError listing why."""

    @field_validator("round_to", mode="before")
    @classmethod
    def _rounding(cls, v):
        if v == "auto":
            return LatencyRounding()  # parsed once, here
        if isinstance(v, dict):  # from a record / JSON
            return LatencyRounding(**v)
        if isinstance(v, bool) or not isinstance(v, int | LatencyRounding) or (
                isinstance(v, int) and v < 1):
            raise ValueError(f"round_to={v!r} must be an int ≥ 1, 'auto' or a LatencyRounding")
        return v

    @field_validator("block")
    @classmethod
    def _block(cls, v):
        if not all(b >= 1 for b in v):
            raise ValueError(f"block={v!r} must be two ints ≥ 1 (rows, columns of a tile)")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        targets = [t for t in ("ratio", "target_macs", "target_params")
                   if getattr(self, t) is not None]
        if self.granularity == "nm":
            if not self.n < self.m:
                raise ValueError(f"n={self.n}, m={self.m}: need 0 < n < m")
            return self
        if len(targets) != 1:
            raise ValueError("give exactly one of ratio, target_macs, target_params (got "
                             f"{targets or 'none'})")
        if self.granularity == "depth" and self.importance not in DEPTH_IMPORTANCES:
            raise ValueError(f"importance='{self.importance}': granularity='depth' ranks whole "
                             f"blocks by one of {DEPTH_IMPORTANCES}")
        if not self.structured and self.importance == "mask":
            raise ValueError("importance='mask' (loss change of masking a channel) is for "
                             "structured granularities, e.g. 'head'")
        if self.granularity in ("unstructured", "block") and targets[0] != "ratio":
            raise ValueError(f"granularity='{self.granularity}' takes ratio=…; MACs and params "
                             "targets need a structured granularity")
        return self

    @property
    def structured(self) -> bool:
        return self.granularity not in ELEMENTWISE

    def amount(self) -> tuple[str, float]:
        """(which target, how much): ('ratio', 0.3), ('target_macs', 0.5)."""
        key = next((k for k in ("ratio", "target_macs", "target_params")
                    if getattr(self, k) is not None), "ratio")
        return key, getattr(self, key) or 0.0


__all__ = ["DEPTH_IMPORTANCES", "ELEMENTWISE", "Granularity", "Importance", "PruneConfig",
           "PruneRule"]
