"""Search spaces: named genes, each a choice among a few values, over a model-building function.

    space = Space("tiny", genes=(Choice("width", (8, 16, 32)), Choice("depth", (1, 2))),
                  build=lambda a: make_net(a["width"], a["depth"]), input_shape=(1, 8, 8))
    enc = space.encode({"width": 16, "depth": 2})     # (1, 1): one index per gene
    space.decode(enc)                                 # {"width": 16, "depth": 2}

An encoding is a tuple of ints, one index per gene: it is what the strategies see and what the
storage records (as Optuna params named after the genes). Costs (params, MACs, predicted
latency) are computed from the built model before it is trained, so a constraint rejects a
candidate for a few milliseconds instead of a training run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from slimkit.config import Config
from slimkit.errors import ConfigError, SlimkitError, check_choice
from slimkit.latency.table import layer_specs

COSTS = ("params", "macs", "latency_ms")


class SearchError(SlimkitError):
    """A search cannot start or go on (space, storage, constraints)."""


@dataclass(frozen=True)
class Choice:
    """One gene. ordered=True: the options have an order (depth, width, kernel, ratio) that
    samplers may exploit; False: unordered alternatives (operator or block type)."""

    name: str
    options: tuple
    ordered: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        if not self.name or not isinstance(self.name, str):
            raise ConfigError(f"Choice.name={self.name!r} must be a non-empty string")
        if len(self.options) < 1:
            raise ConfigError(f"Choice('{self.name}').options is empty: give at least one value")
        if len(set(map(repr, self.options))) != len(self.options):
            raise ConfigError(f"Choice('{self.name}').options={self.options!r} has duplicates")

    def to_dict(self) -> dict:
        return {"name": self.name, "options": list(self.options), "ordered": self.ordered}


class Constraint(Config):
    """cost ≤ max, checked before a candidate is trained."""

    cost: Literal["params", "macs", "latency_ms"]
    """What is limited: parameters, MACs, or the latency model's milliseconds."""
    max: float = Field(gt=0)
    """The limit."""

    def __str__(self) -> str:
        return f"{self.cost} ≤ {self.max:g}"


@dataclass(frozen=True)
class Space:
    """genes: the choices; build: arch dict (gene name → option) → nn.Module;
    input_shape: one sample's shape, e.g. (1, 8, 8). kind: 'architecture' (candidates train
    from scratch) or 'pruning' (candidates start from a trained model's weights)."""

    name: str
    genes: tuple[Choice, ...]
    build: Callable[[dict], nn.Module] = field(compare=False, repr=False)
    input_shape: tuple[int, ...] = ()
    kind: str = "architecture"

    def __post_init__(self) -> None:
        object.__setattr__(self, "genes", tuple(self.genes))
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        check_choice("Space.kind", self.kind, {"architecture", "pruning"})
        names = [g.name for g in self.genes]
        if not names:
            raise ConfigError(f"Space('{self.name}') has no genes")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"Space('{self.name}') names genes {dup} more than once")
        if not self.input_shape:
            raise ConfigError(f"Space('{self.name}').input_shape is empty: give one sample's "
                              "shape, e.g. (1, 8, 8)")

    # ---- encoding ------------------------------------------------------------------------
    @property
    def size(self) -> int:
        n = 1
        for g in self.genes:
            n *= len(g.options)
        return n

    def decode(self, encoding: Sequence[int]) -> dict[str, Any]:
        if len(encoding) != len(self.genes):
            raise ConfigError(f"encoding has {len(encoding)} genes; space '{self.name}' has "
                              f"{len(self.genes)} ({[g.name for g in self.genes]})")
        out = {}
        for g, i in zip(self.genes, encoding, strict=True):
            if not isinstance(i, int) or not 0 <= i < len(g.options):
                raise ConfigError(f"gene '{g.name}' index {i!r} is outside 0..{len(g.options)-1}")
            out[g.name] = g.options[i]
        return out

    def encode(self, arch: dict[str, Any]) -> tuple[int, ...]:
        missing = [g.name for g in self.genes if g.name not in arch]
        extra = sorted(set(arch) - {g.name for g in self.genes})
        if missing or extra:
            raise ConfigError(f"arch for space '{self.name}': missing genes {missing}, "
                              f"unknown genes {extra}")
        enc = []
        for g in self.genes:
            if arch[g.name] not in g.options:
                raise ConfigError(f"gene '{g.name}'={arch[g.name]!r} is not allowed; choose "
                                  f"one of {list(g.options)}")
            enc.append(g.options.index(arch[g.name]))
        return tuple(enc)

    def random(self, rng: random.Random) -> tuple[int, ...]:
        return tuple(rng.randrange(len(g.options)) for g in self.genes)

    def from_params(self, params: dict[str, int]) -> tuple[int, ...]:
        """The encoding recorded in an Optuna trial's params (gene name → index)."""
        return tuple(int(params[g.name]) for g in self.genes)

    def distributions(self) -> dict:
        """Optuna distributions, one per gene, over option indices."""
        from optuna.distributions import CategoricalDistribution, IntDistribution

        return {g.name: IntDistribution(0, len(g.options) - 1) if g.ordered
                else CategoricalDistribution(list(range(len(g.options)))) for g in self.genes}

    # ---- identity (resume checks) --------------------------------------------------------
    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "input_shape": list(self.input_shape),
                "genes": [g.to_dict() for g in self.genes]}

    def difference(self, stored: dict) -> str | None:
        """What differs between this space and one recorded as to_dict() (None: same)."""
        mine = self.to_dict()
        for key in ("name", "kind", "input_shape"):
            if stored.get(key) != mine[key]:
                return f"{key} is {stored.get(key)!r} in storage, {mine[key]!r} now"
        old = {g["name"]: g for g in stored.get("genes", [])}
        new = {g["name"]: g for g in mine["genes"]}
        if list(old) != list(new):
            gone, added = [n for n in old if n not in new], [n for n in new if n not in old]
            return (f"genes differ: only in storage {gone}, only now {added}" if gone or added
                    else f"gene order differs: {list(old)} in storage, {list(new)} now")
        for n, g in new.items():
            if old[n] != g:
                return (f"gene '{n}': options {old[n]['options']} (ordered={old[n]['ordered']})"
                        f" in storage, {g['options']} (ordered={g['ordered']}) now")
        return None

    # ---- building and costs --------------------------------------------------------------
    def example(self, batch: int = 1) -> torch.Tensor:
        return torch.randn(batch, *self.input_shape, generator=torch.Generator().manual_seed(0))

    def build_model(self, encoding: Sequence[int]) -> nn.Module:
        model = self.build(self.decode(encoding))
        if not isinstance(model, nn.Module):
            raise TypeError(f"space '{self.name}': build returned {type(model).__name__}, "
                            "not an nn.Module")
        return model


@dataclass(frozen=True)
class Costs:
    params: int
    macs: int  # per sample
    latency_ms: float | None  # predicted by the layer table at its batch (None: not asked)

    def get(self, cost: str) -> float:
        v = getattr(self, cost)
        if v is None:
            raise SearchError(f"cost '{cost}' was not computed: latency needs a latency table")
        return float(v)

    def to_dict(self) -> dict:
        return {"params": self.params, "macs": self.macs, "latency_ms": self.latency_ms}


def model_costs(model: nn.Module, example: torch.Tensor, table=None) -> Costs:
    """Params, MACs (conv / linear, per sample) and, with a LatencyTable, predicted latency."""
    specs = layer_specs(model, example)
    params = sum(p.numel() for p in model.parameters())
    macs = sum(s.macs() for _, s in specs)
    lat = table.predict(model, example).total_ms if table is not None else None
    return Costs(params, macs, lat)


def violation(costs: Costs, constraints: Sequence[Constraint]) -> Constraint | None:
    """The first constraint `costs` break, or None."""
    for c in constraints:
        if costs.get(c.cost) > c.max:
            return c
    return None
