"""PNG plots of a SearchResult for the report: the Pareto front and the search curve.
Each returns PNG bytes (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from slimkit.figures import outside_legend, png
from slimkit.search.results import SearchResult


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(5, 3.5))


def pareto_png(result: SearchResult, x_axis: int = 1) -> bytes:
    """Metric (y) against one cost axis (x): every completed trial, the front highlighted."""
    pts = result.pareto_points()
    if len(pts["axes"]) < 2:
        raise ValueError("a Pareto plot needs a cost axis: search with a constraint or a second "
                         "objective")
    fig, ax = _figure()
    xs = [p[x_axis] for p in pts["all"]]
    ys = [p[0] for p in pts["all"]]
    ax.scatter(xs, ys, s=12, c="0.6", label="trials")
    front = sorted(pts["front"], key=lambda p: p[x_axis])
    ax.plot([p[x_axis] for p in front], [p[0] for p in front], "o-", c="C3", ms=4,
            label="Pareto front")
    for cost, limit in result.constraints:
        if cost == pts["axes"][x_axis]:
            ax.axvline(limit, ls="--", c="C0", lw=1, label=f"{cost} ≤ {limit:g}")
    ax.set_xlabel(pts["axes"][x_axis])
    ax.set_ylabel(pts["axes"][0])
    outside_legend(ax)
    return png(fig)


def curve_png(result: SearchResult) -> bytes:
    """Best metric so far against trial number."""
    fig, ax = _figure()
    curve = result.search_curve()
    ax.step([n for n, _ in curve], [v for _, v in curve], where="post", c="C3")
    done = result.completed
    ax.scatter([t.number for t in done], [t.values[0] for t in done], s=8, c="0.6")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{result.objectives[0]} (best so far)")
    return png(fig)
