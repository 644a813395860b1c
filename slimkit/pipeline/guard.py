"""The budget guard: what a stage may lose and from where it is measured.

    overall    max_drop, always from the original model's metric
    per stage  the stage's `budget`, the recipe's per_stage, or max_drop — measured from the
               worse of the original's metric and the stage's input (a stage that improved
               never makes the next one's honest result look like a loss)
    a chain    deferred stages are not judged; the stage that ends their chain is judged from
               where the chain started, against the sum of its stages' per-stage budgets
"""

from __future__ import annotations

from dataclasses import dataclass

from slimkit.pipeline.recipe import Budget
from slimkit.pipeline.sources import RunMetric

EPS = 1e-9


def own_budget(budget: Budget, cfg) -> float:
    """A stage's own per-stage budget: its `budget`, the recipe's per_stage, or max_drop."""
    own = getattr(cfg, "budget", None)
    if own is not None:
        return own
    return budget.per_stage if budget.per_stage is not None else budget.max_drop


@dataclass
class Guard:
    metric: RunMetric
    baseline: float
    budget: Budget
    reference: float = 0.0  # what the current stage's loss is measured from
    chain_budget: float | None = None  # set while the stage that ends a chain runs
    deferred: bool = False  # the current stage is judged where its chain ends

    def begin(self, input_metric: float) -> None:
        """A stage starts from `input_metric` (outside a chain)."""
        self.reference = self.metric.worse(self.baseline, input_metric)

    def judge_chain(self, reference: float, budget: float) -> None:
        """The stage that ends a chain runs next: judged from `reference` against `budget`."""
        self.reference, self.chain_budget = reference, budget

    def end_stage(self) -> None:
        self.chain_budget, self.deferred = None, False

    def stage_budget(self, cfg) -> float:
        """What this stage may lose (a chain's end: what the whole chain may lose)."""
        return self.chain_budget if self.chain_budget is not None else own_budget(
            self.budget, cfg)

    def fits_overall(self, value: float) -> bool:
        return self.metric.drop(self.baseline, value) <= self.budget.max_drop + EPS

    def fits(self, value: float, cfg) -> bool:
        if self.deferred:
            return True  # judged where the chain ends
        return (self.metric.drop(self.reference, value) <= self.stage_budget(cfg) + EPS
                and self.fits_overall(value))

    def over(self, label: str, value: float, cfg) -> str:
        """Why an attempt is over budget, in numbers."""
        d = self.metric.drop(self.reference, value)
        total = self.metric.drop(self.baseline, value)
        return (f"{label} is over budget ({self.metric.unit} {value:.4g}: {d:+.3g} from "
                f"{self.reference:.4g}, at most {self.stage_budget(cfg):g} per stage; "
                f"{total:+.3g} of {self.budget.max_drop:g} overall)")


__all__ = ["Guard", "own_budget"]
