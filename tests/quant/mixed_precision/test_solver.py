"""The multiple-choice knapsack: equals brute force, never exceeds the budget, never gets
worse with more budget, and names the smallest achievable cost when nothing fits."""

import itertools
import math
import random

import pytest

from slimkit.quant.mixed_precision import BudgetError, Option, pareto_front, solve


def _instance(rng: random.Random, n_layers: int, n_opts: int, integer: bool):
    layers = {}
    for i in range(n_layers):
        opts = []
        for j in range(n_opts):
            cost = rng.randint(1, 20) if integer else rng.uniform(0.1, 20.0)
            opts.append(Option(f"o{j}", rng.uniform(0.0, 10.0), float(cost)))
        layers[f"l{i}"] = opts
    return layers


def _brute(layers, budget):
    best = None
    for combo in itertools.product(*layers.values()):
        cost = sum(o.cost for o in combo)
        sens = sum(o.sensitivity for o in combo)
        if cost <= budget and (best is None or sens < best):
            best = sens
    return best


@pytest.mark.parametrize("seed", range(40))
def test_equals_brute_force_and_respects_the_budget(seed):
    rng = random.Random(seed)
    layers = _instance(rng, rng.randint(1, 5), rng.randint(1, 4), integer=seed % 2 == 0)
    lo = sum(min(o.cost for o in v) for v in layers.values())
    hi = sum(max(o.cost for o in v) for v in layers.values())
    previous = math.inf
    for budget in sorted(rng.uniform(lo, hi + 1) for _ in range(6)):
        point = solve(layers, budget)
        assert point.cost <= budget
        assert math.isclose(point.sensitivity, _brute(layers, budget), rel_tol=1e-9, abs_tol=1e-9)
        # the assignment is real: its options add up to the point
        opts = [next(o for o in layers[n] if o.name == c) for n, c in
                zip(layers, point.choice, strict=True)]
        assert math.isclose(sum(o.cost for o in opts), point.cost)
        assert point.sensitivity <= previous  # more budget is never worse
        previous = point.sensitivity


def test_front_is_non_dominated_and_sorted():
    layers = _instance(random.Random(7), 6, 4, integer=False)
    front = pareto_front(layers)
    for a, b in zip(front, front[1:], strict=False):
        assert a.cost <= b.cost and a.sensitivity > b.sensitivity


def test_an_impossible_budget_names_the_smallest_achievable_cost():
    layers = {"a": [Option("x", 1.0, 3.0), Option("y", 0.0, 5.0)],
              "b": [Option("x", 1.0, 2.0)]}
    with pytest.raises(BudgetError, match="smallest achievable cost 5"):
        solve(layers, 4.9)
    assert solve(layers, 5.0).choice == ("x", "x")
