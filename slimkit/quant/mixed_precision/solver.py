"""Multiple-choice knapsack: one option per layer, least total sensitivity under a budget.

Exact, by dynamic programming over Pareto fronts: after each layer only the (cost,
sensitivity) points no other point beats on both are kept, so the front of the whole model is
every optimal trade-off, for any real-valued costs (bytes, measured milliseconds). Querying
the front at a budget gives the optimum for that budget; a larger budget can only reach more
of the front, so it is never worse. Pure: no torch, no model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from slimkit.errors import ConfigError


class BudgetError(ConfigError):
    """No assignment meets the budget; the message names the smallest achievable cost."""


@dataclass(frozen=True)
class Option:
    name: str
    sensitivity: float
    cost: float


@dataclass(frozen=True)
class ParetoPoint:
    cost: float
    sensitivity: float
    choice: tuple[str, ...]  # option name per layer, in the layers' order

    def assignment(self, layers: list[str] | tuple[str, ...]) -> dict[str, str]:
        return dict(zip(layers, self.choice, strict=True))


def _check(layers: dict[str, list[Option]]) -> None:
    if not layers:
        raise ConfigError("mixed precision: no layers to assign")
    for name, opts in layers.items():
        if not opts:
            raise ConfigError(f"mixed precision: layer '{name}' has no candidate option")
        for o in opts:
            if not (math.isfinite(o.cost) and math.isfinite(o.sensitivity)):
                raise ConfigError(f"mixed precision: option {o.name!r} of '{name}' has a "
                                  f"non-finite cost or sensitivity ({o.cost}, {o.sensitivity})")


def pareto_front(layers: dict[str, list[Option]], max_points: int = 200_000) -> list[ParetoPoint]:
    """All non-dominated assignments, by increasing cost (and decreasing sensitivity).
    Past `max_points` the front is thinned to that many points (then no longer exact)."""
    _check(layers)
    # a point: (cost, sensitivity, back-pointer chain (option index, parent chain))
    front: list[tuple[float, float, tuple | None]] = [(0.0, 0.0, None)]
    for opts in layers.values():
        grown = [(c + o.cost, s + o.sensitivity, (i, chain))
                 for c, s, chain in front for i, o in enumerate(opts)]
        grown.sort(key=lambda p: (p[0], p[1]))
        front, best = [], math.inf
        for p in grown:
            if p[1] < best:
                front.append(p)
                best = p[1]
        if len(front) > max_points:
            step = len(front) / max_points
            front = [front[int(i * step)] for i in range(max_points)] + [front[-1]]
    names = [[o.name for o in opts] for opts in layers.values()]
    return [ParetoPoint(c, s, _unwind(chain, names)) for c, s, chain in front]


def _unwind(chain, names: list[list[str]]) -> tuple[str, ...]:
    idx = []
    while chain is not None:
        i, chain = chain
        idx.append(i)
    return tuple(names[k][i] for k, i in enumerate(reversed(idx)))


def smallest_cost(layers: dict[str, list[Option]]) -> float:
    return sum(min(o.cost for o in opts) for opts in layers.values())


def at_budget(front: list[ParetoPoint], budget: float, layers=None) -> ParetoPoint:
    """The least-sensitivity point whose cost is within `budget`."""
    feasible = [p for p in front if p.cost <= budget]
    if not feasible:
        least = front[0].cost
        raise BudgetError(f"budget {budget:,.6g} is below the smallest achievable cost "
                          f"{least:,.6g} (every layer at its cheapest option)")
    return min(feasible, key=lambda p: (p.sensitivity, p.cost))


def solve(layers: dict[str, list[Option]], budget: float) -> ParetoPoint:
    return at_budget(pareto_front(layers), budget)
