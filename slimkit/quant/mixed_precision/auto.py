"""From a sensitivity table and a cost model to a QuantConfig: the mixed-precision step.

    cfg, result = auto_config(model, calib, budget=60_000)        # bytes, by default
    print(result)                                                 # the Pareto front, the pick
    q = sk.quantize(model, cfg, calib)

Objective per (layer, scheme): by default the relative output noise 10^(−SQNR/10) of the
model with only that layer quantized ("noise"); or "delta_loss" / "hawq" from the table.
"""

from __future__ import annotations

import glob
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

from slimkit.errors import ConfigError, check_choice
from slimkit.quant.algorithms.common import float_reference
from slimkit.quant.config import QuantConfig, Rule
from slimkit.quant.granularity import PerChannel
from slimkit.quant.mixed_precision.costs import CostModel, SizeCost
from slimkit.quant.mixed_precision.sensitivity import sensitivity
from slimkit.quant.mixed_precision.solver import (
    BudgetError,
    Option,
    ParetoPoint,
    at_budget,
    pareto_front,
)
from slimkit.quant.mixed_precision.table import SensitivityTable
from slimkit.quant.qscheme import QScheme
from slimkit.quant.spec import LayerQuant, WeightQuant, uint8_act

MEASURES = ("noise", "delta_loss", "hawq")


def default_schemes() -> dict[str, LayerQuant | None]:
    """float · int8 (W8 per-channel, uint8 activations) · w4a8 · weight-only 4-bit."""
    w8 = WeightQuant(QScheme(8, granularity=PerChannel(0)))
    w4 = WeightQuant(QScheme(4, granularity=PerChannel(0)))
    return {"float": None, "int8": LayerQuant(w8, uint8_act()),
            "w4a8": LayerQuant(w4, uint8_act()), "w4": LayerQuant(w4)}


def candidates(table: SensitivityTable, schemes: dict[str, LayerQuant | None],
               cost: CostModel, measure: str = "noise") -> dict[str, list[Option]]:
    check_choice("measure", measure, MEASURES)
    out = {}
    for layer in table.layers:
        opts = []
        for k in table.schemes:
            r = table.get(layer, k)
            v = r.noise if measure == "noise" else getattr(r, measure)
            if r.applicable and v is not None:
                opts.append(Option(k, max(float(v), 0.0) if measure != "delta_loss"
                                   else float(v), float(cost(layer, schemes[k]))))
        out[layer] = opts
    return out


def config_from_choice(assignment: dict[str, str], schemes: dict[str, LayerQuant | None],
                       base: QuantConfig | None = None, name: str = "auto") -> QuantConfig:
    """Rules per layer (exact names); the most common quantized choice is the default."""
    bad = sorted({k for k in assignment.values() if k not in schemes})
    if bad:
        raise ConfigError(f"assignment names scheme(s) {bad}; known: {sorted(schemes)}")
    counts = Counter(k for k in assignment.values() if schemes[k] is not None)
    # every layer float (a budget ≥ the float cost): default None keeps them all float
    default = counts.most_common(1)[0][0] if counts else next(
        k for k, v in schemes.items() if v is None)
    rules = tuple(Rule(pattern=glob.escape(layer), spec=schemes[k])
                  for layer, k in assignment.items() if k != default)
    op_inputs = base.op_inputs if base is not None else None
    return QuantConfig(schemes[default], rules, op_inputs=op_inputs, name=name)


@dataclass(frozen=True)
class MixedPrecisionResult:
    layers: tuple[str, ...]
    front: tuple[ParetoPoint, ...]
    chosen: ParetoPoint
    budget: float
    float_cost: float
    measure: str

    def to_dict(self) -> dict:
        return {"budget": self.budget, "float_cost": self.float_cost, "measure": self.measure,
                "chosen": {"cost": self.chosen.cost, "sensitivity": self.chosen.sensitivity,
                           "assignment": self.chosen.assignment(self.layers)},
                "front": [{"cost": p.cost, "sensitivity": p.sensitivity} for p in self.front]}

    def __str__(self) -> str:
        # bytes read as integers; milliseconds (a latency cost) need their decimals
        fmt = ",.0f" if self.float_cost >= 1000 else ".4g"
        lines = [f"Pareto front ({len(self.front)} points, {self.measure}), budget "
                 f"{self.budget:{fmt}} of {self.float_cost:{fmt}} (float)",
                 f"{'cost':>14}  {'objective':>11}"]
        step = max(1, len(self.front) // 12)
        for p in self.front[::step]:
            mark = "  ← chosen" if p == self.chosen else ""
            lines.append(f"{p.cost:>14{fmt}}  {p.sensitivity:>11.4g}{mark}")
        lines.append(f"chosen: cost {self.chosen.cost:{fmt}}, objective "
                     f"{self.chosen.sensitivity:.4g}: " + ", ".join(
                         f"{k}×{v}" for k, v in Counter(self.chosen.choice).items()))
        return "\n".join(lines)


def auto_config(model: nn.Module, data: Iterable, budget: float, *,
                schemes: dict[str, LayerQuant | None] | None = None,
                cost: CostModel | None = None, measure: str = "noise",
                table: SensitivityTable | None = None, base: QuantConfig | None = None,
                **sensitivity_kwargs) -> tuple[QuantConfig, MixedPrecisionResult]:
    """The QuantConfig with the least summed sensitivity whose cost fits `budget`."""
    schemes = schemes or default_schemes()
    if table is None:
        table = sensitivity(model, data, schemes, **sensitivity_kwargs)
    cost = cost or SizeCost(float_reference(model))
    cands = candidates(table, schemes, cost, measure)
    front = pareto_front(cands)
    float_cost = sum(cost(n, None) for n in table.layers)
    try:
        point = at_budget(front, budget)
    except BudgetError as e:
        raise BudgetError(f"{e}; float costs {float_cost:,.6g}") from None
    result = MixedPrecisionResult(table.layers, tuple(front), point, float(budget), float_cost,
                                  measure)
    return config_from_choice(point.assignment(table.layers), schemes, base), result
