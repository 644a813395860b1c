"""Plots for the report, as PNG bytes (matplotlib, imported only when called)."""

from __future__ import annotations

import math

from slimkit.figures import outside_legend, png
from slimkit.quant.mixed_precision.table import SensitivityTable


def plot_sensitivity(table: SensitivityTable, value: str = "sqnr_db") -> bytes:
    """Grouped bars: one group per layer, one bar per quantized scheme."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schemes = [s for s in table.schemes
               if any(table.get(n, s).sqnr_db not in (None, math.inf) for n in table.layers)]
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(table.layers) * max(1, len(schemes))), 4))
    width = 0.8 / max(1, len(schemes))
    for j, s in enumerate(schemes):
        ys = [getattr(table.get(n, s), value) for n in table.layers]
        xs = [i + j * width for i in range(len(table.layers))]
        ax.bar(xs, [0 if y is None else y for y in ys], width, label=s)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(table.layers))])
    ax.set_xticklabels(table.layers, rotation=70, ha="right", fontsize=7)
    ax.set_ylabel(value.replace("_", " "))
    ax.set_title("per-layer sensitivity (only that layer quantized)")
    outside_legend(ax)
    return png(fig)


def plot_pareto(result) -> bytes:
    """Cost vs objective of the whole front, the chosen point marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([p.cost for p in result.front], [p.sensitivity for p in result.front], ".-", ms=3)
    ax.plot([result.chosen.cost], [result.chosen.sensitivity], "o", color="red", label="chosen")
    ax.axvline(result.budget, ls="--", color="grey", lw=1, label="budget")
    ax.set_xlabel("cost")
    ax.set_ylabel(result.measure)
    ax.set_yscale("symlog", linthresh=1e-6)
    outside_legend(ax)
    return png(fig)
