"""The report's plots, drawn from report.json alone (so `slimkit report DIR` can redraw them):
matplotlib (Agg) → PNG bytes, embedded in the HTML as base64."""

from __future__ import annotations

import io

# one axes, numeric ticks, short axis labels
_AXES = {"left": 0.11, "right": 0.97, "bottom": 0.15, "top": 0.9, "wspace": 0.3}
RUNTIME_COLORS = {"torch": "#4C72B0", "ort": "#DD8452", "openvino": "#55A868"}


def _fig(w: float = 6.4, h: float = 3.6):
    import matplotlib

    matplotlib.use("Agg")  # no screen, no GUI toolkit
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(w, h), dpi=96)
    return plt, fig, ax


def _png(plt, fig, margins: dict | None = None) -> bytes:
    """margins: fixed subplot margins for a figure whose labels have a known size (the layout
    engine costs as much as drawing); tight layout for tick labels named by the user's model."""
    buf = io.BytesIO()
    if margins is None:
        fig.tight_layout()
    else:
        fig.subplots_adjust(**margins)
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def metric_vs_latency(report: dict) -> bytes | None:
    """Every attempt of every stage (kept ones filled), metric against eager latency probe."""
    points = [(s, j, a) for s in report["stages"] for j, a in enumerate(s["attempts"])
              if a.get("latency_ms") is not None and s["kind"] not in ("export", "benchmark")]
    if not points:
        return None
    plt, fig, ax = _fig()
    seen: dict[tuple, int] = {}  # stages that leave the model's speed and metric alike
    for s, j, a in points:
        kept = j == s.get("chosen")
        ax.scatter(a["latency_ms"], a["metric"], s=46 if kept else 22,
                   facecolors=None if kept else "none", edgecolors="k" if kept else "grey",
                   c="#4C72B0" if kept else None)
        at = (round(a["latency_ms"], 4), round(a["metric"], 4))
        seen[at] = seen.get(at, -1) + 1  # … share a point: their labels stack, not overlap
        ax.annotate(f"{s['index']}:{s['kind']}", (a["latency_ms"], a["metric"]), fontsize=7,
                    xytext=(3, 3 + 9 * seen[at]), textcoords="offset points")
    ax.axhline(report["source"]["metric"], color="grey", lw=0.8, ls="--", label="original")
    ax.axhline(report["source"]["metric"] - report["budget"]["max_drop"], color="#C44E52",
               lw=0.8, ls=":", label="budget floor")
    ax.set_xlabel("latency, ms (ONNX Runtime probe at the training batch size)")
    ax.set_ylabel(report["metric"]["unit"])
    ax.set_title("every model tried: metric vs latency (filled: kept)")
    ax.legend(fontsize=8)
    return _png(plt, fig, _AXES)


def stage_metrics(report: dict) -> bytes:
    plt, fig, ax = _fig(6.4, 3.0)
    labels = ["original"] + [f"{s['index']}:{s['kind']}" for s in report["stages"]]
    values = [report["source"]["metric"]] + [s["metric"] for s in report["stages"]]
    ax.plot(labels, values, marker="o")
    ax.axhline(report["source"]["metric"] - report["budget"]["max_drop"], color="#C44E52",
               lw=0.8, ls=":")
    ax.set_ylabel(report["metric"]["unit"])
    ax.set_title("metric after each stage (dotted: the budget's floor)")
    ax.tick_params(axis="x", labelsize=8, rotation=20)
    return _png(plt, fig)


def weight_histograms(layers: list[dict]) -> bytes | None:
    """Float vs quantized weight distribution per layer (the seed examples' view)."""
    with_hist = [la for la in layers if "hist" in la]
    if not with_hist:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(with_hist))
    rows = -(-len(with_hist) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.3 * rows), dpi=96,
                             squeeze=False)
    for ax, la in zip(axes.flat, with_hist, strict=False):
        h = la["hist"]  # stairs: one artist per histogram (bars would be one per bin, 10× slower)
        ax.stairs(h["float"], h["edges"], fill=True, color="#4C72B0", alpha=0.55,
                  label="float")
        ax.stairs(h["quant"], h["edges"], color="#DD8452", linewidth=1.2, label="quantized")
        ax.set_title(f"{la['layer']} ({la['weight_sqnr']:.1f} dB)", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(with_hist):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    w, h = fig.get_size_inches()  # margins in inches: the grid grows with the layers
    return _png(plt, fig, {"left": 0.4 / w, "right": 1 - 0.1 / w, "bottom": 0.3 / h,
                           "top": 1 - 0.3 / h, "wspace": 0.25, "hspace": 0.6})


def layer_sqnr(layers: list[dict]) -> bytes | None:
    if not layers:
        return None
    plt, fig, ax = _fig(6.4, 2.8)
    ax.bar(range(len(layers)), [min(la["weight_sqnr"], 99) for la in layers])
    ax.set_xticks(range(len(layers)), [la["layer"] for la in layers], rotation=60, fontsize=6)
    ax.set_ylabel("weight SQNR, dB")
    ax.set_title("quantization error per layer")
    return _png(plt, fig)


def channels_kept(layers: list[dict]) -> bytes | None:
    rows = [la for la in layers if la.get("params_before")]
    if not rows:
        return None
    plt, fig, ax = _fig(6.4, 2.8)
    kept = [la["params_after"] / la["params_before"] for la in rows]
    ax.bar(range(len(rows)), kept)
    ax.set_xticks(range(len(rows)), [la["module"] for la in rows], rotation=60, fontsize=6)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of params kept")
    ax.set_title("pruning per layer")
    return _png(plt, fig)


def latency_bars(rows: list[dict], batch: str) -> bytes | None:
    if not rows:
        return None
    plt, fig, ax = _fig(6.4, 3.0)
    labels = [f"{r['model']} · {r['runtime']}" for r in rows]
    ax.barh(labels, [r["median_ms"] for r in rows],
            color=[RUNTIME_COLORS.get(r["runtime"], "grey") for r in rows])
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("median latency, ms")
    ax.set_title(f"batch {batch}: every kept model on every runtime")
    return _png(plt, fig)


def layer_times(view: dict, batch: str) -> bytes | None:
    """Per-layer time of the original and the final model on one runtime (the benchmark
    stage's `layers` view): the slowest layers of the original, side by side."""
    rows = view.get("rows", [])
    if not rows:
        return None
    plt, fig, ax = _fig(6.4, 0.8 + 0.24 * len(rows))
    ys = list(range(len(rows)))
    before = [r["before_ms"] for r in rows]
    after = [r["after_ms"] or 0.0 for r in rows]
    ax.barh([y - 0.2 for y in ys], before, height=0.4, color="#4C72B0", label="original")
    ax.barh([y + 0.2 for y in ys], after, height=0.4, color="#DD8452", label="final")
    ax.set_yticks(ys, [r["layer"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"ms per call ({view['runtime']} {view['precision']}, its profiler)")
    ax.set_title(f"batch {batch}: where the time goes, per layer")
    ax.legend(fontsize=7)
    return _png(plt, fig)


def search_curve(curve: list, pareto: dict) -> bytes | None:
    """A search stage: the metric of each trial and the best so far; the Pareto front."""
    if not curve:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    two = len(pareto.get("axes", [])) >= 2
    fig, axes = plt.subplots(1, 2 if two else 1, figsize=(9 if two else 5, 3.2), dpi=96,
                             squeeze=False)
    ax = axes[0][0]
    xs, ys = [c[0] for c in curve], [c[1] for c in curve]
    best = [max(ys[: i + 1]) for i in range(len(ys))]
    ax.scatter(xs, ys, s=10, color="grey", label="trial")
    ax.plot(xs, best, color="#4C72B0", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(pareto.get("axes", ["metric"])[0])
    ax.legend(fontsize=7)
    ax.set_title("search curve", fontsize=9)
    if two:
        ax = axes[0][1]
        pts, front = pareto.get("all", []), pareto.get("front", [])
        ax.scatter([p[1] for p in pts], [p[0] for p in pts], s=10, color="grey")
        front = sorted(front, key=lambda p: p[1])
        ax.plot([p[1] for p in front], [p[0] for p in front], "o-", color="#DD8452")
        ax.set_xlabel(pareto["axes"][1])
        ax.set_ylabel(pareto["axes"][0])
        ax.set_title("Pareto front", fontsize=9)
    return _png(plt, fig, _AXES)


def mixed_front(front: dict) -> bytes | None:
    """A mixed-precision stage: the Pareto front of cost vs summed sensitivity, chosen marked."""
    pts = front.get("front", [])
    if not pts:
        return None
    plt, fig, ax = _fig(6.0, 3.0)
    ax.plot([p["cost"] for p in pts], [p["sensitivity"] for p in pts], ".-", color="grey")
    ch = front["chosen"]
    ax.scatter([ch["cost"]], [ch["sensitivity"]], s=60, color="#DD8452", zorder=3,
               label="chosen")
    ax.axvline(front["budget"], color="#C44E52", ls=":", lw=0.8, label="budget")
    ax.set_xlabel("cost")
    ax.set_ylabel(f"summed sensitivity ({front['measure']})")
    ax.set_title("mixed precision: the whole Pareto front", fontsize=9)
    ax.legend(fontsize=7)
    return _png(plt, fig, _AXES)


def sensitivity(table: dict) -> bytes | None:
    """A mixed-precision stage's per-layer sensitivity table (output SQNR with only that
    layer quantized, per scheme), from its JSON form."""
    from slimkit.quant.mixed_precision.plot import plot_sensitivity
    from slimkit.quant.mixed_precision.table import SensitivityTable

    t = SensitivityTable.from_dict(table)
    return plot_sensitivity(t) if t.layers else None
