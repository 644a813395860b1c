"""The report's plots, drawn from report.json alone (so `slimkit report DIR` can redraw them):
SVG documents (report/svg.py), embedded in the HTML as data URIs."""

from __future__ import annotations

import math

from slimkit.quant.mixed_precision.table import SensitivityTable
from slimkit.report.svg import PALETTE, Figure, Panel, padded, text_width

RUNTIME_COLORS = {"torch": "#4C72B0", "ort": "#DD8452", "openvino": "#55A868"}
BLUE, ORANGE, RED, GREY = PALETTE[0], PALETTE[1], "#C44E52", "#888"
LEFT, RIGHT, TOP, BOTTOM = 70, 16, 30, 52  # margins of a one-panel figure with numeric axes


def _one(w: float, h: float, xlim, ylim, left: float = LEFT, bottom: float = BOTTOM,
         top: float = TOP) -> tuple[Figure, Panel]:
    fig = Figure(w, h)
    return fig, fig.panel(left, top, w - left - RIGHT, h - top - bottom, xlim, ylim)


def _span(values, *also) -> tuple[float, float]:
    vs = [v for v in (*values, *also) if v is not None and math.isfinite(v)]
    return padded(min(vs), max(vs)) if vs else (0.0, 1.0)


def _cats(n: int) -> tuple[float, float]:
    return -0.6, n - 0.4


def _rotated_room(labels, size: float) -> float:
    """Pixels below the axis that labels rotated by 60° need."""
    return 16 + 0.87 * max((text_width(s, size) for s in labels), default=0)


def _fit(s: str, px: float, size: float) -> str:
    """`s`, middle elided to fit px (long module paths in small panels)."""
    n = int(px / (0.6 * size))
    return s if len(s) <= n else s[: max(1, n // 2 - 1)] + "…" + s[-(n - n // 2):]


def budget_limit(report: dict) -> float:
    """The worst metric the overall budget allows: a floor for an accuracy, a ceiling for an
    error (report["metric"]["higher_is_better"] False)."""
    src, budget = report["source"]["metric"], report["budget"]["max_drop"]
    return src + budget if report["metric"].get("higher_is_better") is False else src - budget


def metric_vs_latency(report: dict) -> bytes | None:
    """Every attempt of every stage (kept ones filled), metric against the latency probe."""
    points = [(s, j, a) for s in report["stages"] for j, a in enumerate(s["attempts"])
              if a.get("latency_ms") is not None and s["kind"] not in ("export", "benchmark")]
    if not points:
        return None
    src, floor = report["source"]["metric"], budget_limit(report)
    fig, ax = _one(640, 360, _span([a["latency_ms"] for _, _, a in points]),
                   _span([a["metric"] for _, _, a in points], src, floor))
    ax.hline(src, GREY, "dash")
    ax.hline(floor, RED, "dot")
    seen: dict[tuple, int] = {}  # stages that leave the model's speed and metric alike
    for s, j, a in points:
        kept = j == s.get("chosen")
        ax.point(a["latency_ms"], a["metric"], 4.5 if kept else 3,
                 BLUE if kept else "none", "black" if kept else GREY)
        at = (round(a["latency_ms"], 4), round(a["metric"], 4))
        seen[at] = seen.get(at, -1) + 1  # … share a point: their labels stack, not overlap
        ax.label(a["latency_ms"], a["metric"], f"{s['index']}:{s['kind']}", 5,
                 -5 - 9 * seen[at])
    ax.frame("every model tried: metric vs latency (filled: kept)",
             "latency, ms (ONNX Runtime probe at the training batch size)",
             report["metric"]["unit"])
    ax.legend([("kept", BLUE, "dot"), ("tried", GREY, "ring"), ("original", GREY, "dash"),
               ("budget floor", RED, "dotted")])
    return fig.bytes()


def stage_metrics(report: dict) -> bytes:
    labels = ["original"] + [f"{s['index']}:{s['kind']}" for s in report["stages"]]
    values = [report["source"]["metric"]] + [s["metric"] for s in report["stages"]]
    floor = budget_limit(report)
    fig, ax = _one(640, 240 + _rotated_room(labels, 9) - BOTTOM, _cats(len(labels)),
                   _span(values, floor), bottom=_rotated_room(labels, 9))
    ax.hline(floor, RED, "dot")
    ax.line(range(len(values)), values, BLUE, marker=3.5)
    ax.frame("metric after each stage (dotted: the budget's floor)", "",
             report["metric"]["unit"], xticks=False)
    ax.categories_x(labels, 9)
    return fig.bytes()


def weight_histograms(layers: list[dict]) -> bytes | None:
    """Float vs quantized weight distribution per layer (the seed examples' view)."""
    with_hist = [la for la in layers if "hist" in la]
    if not with_hist:
        return None
    cols = min(4, len(with_hist))
    rows = -(-len(with_hist) // cols)
    cw, ch = 300, 200  # one cell: its panel plus room for ticks and the title
    fig = Figure(cols * cw, rows * ch)
    for i, la in enumerate(with_hist):
        h = la["hist"]
        x0, y0 = (i % cols) * cw + 52, (i // cols) * ch + 24
        top = max(max(h["float"], default=0), max(h["quant"], default=0)) or 1
        ax = fig.panel(x0, y0, cw - 64, ch - 52, (h["edges"][0], h["edges"][-1]),
                       (0, top * 1.05))
        ax.stairs(h["float"], h["edges"], BLUE, fill=True)
        ax.stairs(h["quant"], h["edges"], ORANGE)
        ax.frame(_fit(f"{la['layer']} ({la['weight_sqnr']:.1f} dB)", cw - 64, 10), size=9,
                 tick_size=8)
        if i == cols - 1:  # right of the first row: nothing there to cover
            ax.legend([("float", BLUE, "box"), ("quantized", ORANGE, "line")], 8)
    return fig.bytes()


def _layer_bars(names: list[str], values: list[float], ylim, ylabel: str, title: str) -> bytes:
    room = _rotated_room(names, 8)
    fig, ax = _one(max(640, LEFT + RIGHT + 14 * len(names)), 190 + room, _cats(len(names)),
                   ylim, bottom=room)
    ax.bars(range(len(values)), values)
    ax.frame(title, "", ylabel, xticks=False)
    ax.categories_x(names)
    return fig.bytes()


def layer_sqnr(layers: list[dict]) -> bytes | None:
    if not layers:
        return None
    values = [min(la["weight_sqnr"], 99) for la in layers]
    return _layer_bars([la["layer"] for la in layers], values, (0, max(values) * 1.05 or 1),
                       "weight SQNR, dB", "quantization error per layer")


def channels_kept(layers: list[dict]) -> bytes | None:
    rows = [la for la in layers if la.get("params_before")]
    if not rows:
        return None
    return _layer_bars([la["module"] for la in rows],
                       [la["params_after"] / la["params_before"] for la in rows], (0, 1.05),
                       "share of params kept", "pruning per layer")


def _hbar_figure(labels: list[str], xmax: float, h: float) -> tuple[Figure, Panel]:
    left = 16 + max(text_width(s, 9) for s in labels)
    return _one(max(640, left + 360), h, (0, xmax * 1.05 or 1), _cats(len(labels)),
                left=left)


def latency_bars(rows: list[dict], batch: str) -> bytes | None:
    if not rows:
        return None
    rows = [r for r in rows if not r.get("error")]
    if not rows:
        return None
    labels = [r.get("label") or f"{r['model']} · {r['runtime']} {r.get('precision', '')}"
              for r in rows]
    ms = [r["median_ms"] for r in rows]
    title = f"batch {batch}: every kept model on every runtime"
    fig, ax = _hbar_figure(labels, max(ms), 80 + 22 * len(rows))
    ax.hbars(range(len(rows)), ms, colors=[RUNTIME_COLORS.get(r["runtime"], GREY)
                                           for r in rows])
    ax.frame(title, "median latency, ms", yticks=False)
    ax.categories_y(labels)
    return fig.bytes()


def layer_times(view: dict, batch: str) -> bytes | None:
    """Per-layer time of the original and the final model on one runtime (the benchmark
    stage's `layers` view): the slowest layers of the original, side by side."""
    rows = view.get("rows", [])
    if not rows:
        return None
    before = [r["before_ms"] for r in rows]
    after = [r["after_ms"] or 0.0 for r in rows]
    labels = [r["layer"] for r in rows]
    title = f"batch {batch}: where the time goes, per layer"
    fig, ax = _hbar_figure(labels, max(before + after), 90 + 20 * len(rows))
    ys = range(len(rows))
    ax.hbars([y - 0.2 for y in ys], before, 0.4, [BLUE] * len(rows))
    ax.hbars([y + 0.2 for y in ys], after, 0.4, [ORANGE] * len(rows))
    ax.frame(title, f"ms per call ({view['runtime']} {view['precision']}, its profiler)",
             yticks=False)
    ax.categories_y(labels)
    ax.legend([("original", BLUE, "box"), ("final", ORANGE, "box")])
    return fig.bytes()


def search_curve(curve: list, pareto: dict) -> bytes | None:
    """A search stage: the metric of each trial and the best so far; the Pareto front."""
    if not curve:
        return None
    names = pareto.get("axes", ["metric"])
    two = len(names) >= 2
    xs, ys = [c[0] for c in curve], [c[1] for c in curve]
    best = [max(ys[: i + 1]) for i in range(len(ys))]
    fig = Figure(900 if two else 500, 320)
    ax = fig.panel(LEFT, TOP, 450 - LEFT - RIGHT if two else 500 - LEFT - RIGHT,
                   320 - TOP - BOTTOM, _span(xs), _span(ys))
    for x, y in zip(xs, ys, strict=True):
        ax.point(x, y, 2, GREY)
    ax.line(xs, best, BLUE)
    ax.frame("search curve", "trial", names[0])
    legend = [("trial", GREY, "dot"), ("best so far", BLUE, "line")]
    if not two:
        ax.legend(legend)
    if two:
        pts = pareto.get("all", [])
        front = sorted(pareto.get("front", []), key=lambda p: p[1])
        ax2 = fig.panel(450 + LEFT, TOP, 450 - LEFT - RIGHT, 320 - TOP - BOTTOM,
                        _span([p[1] for p in pts + front]), _span([p[0] for p in pts + front]))
        for p in pts:
            ax2.point(p[1], p[0], 2, GREY)
        ax2.line([p[1] for p in front], [p[0] for p in front], ORANGE, marker=3)
        ax2.frame("Pareto front", names[1], names[0])
        ax2.legend([*legend, ("Pareto front", ORANGE, "line")])  # right of both panels
    return fig.bytes()


def mixed_front(front: dict) -> bytes | None:
    """A mixed-precision stage: the Pareto front of cost vs summed sensitivity, chosen marked."""
    pts = front.get("front", [])
    if not pts:
        return None
    ch = front["chosen"]
    fig, ax = _one(600, 300, _span([p["cost"] for p in pts], front["budget"]),
                   _span([p["sensitivity"] for p in pts]))
    ax.line([p["cost"] for p in pts], [p["sensitivity"] for p in pts], GREY, 1.2, marker=1.8)
    ax.vline(front["budget"], RED, "dot")
    ax.point(ch["cost"], ch["sensitivity"], 5, ORANGE)
    ax.frame("mixed precision: the whole Pareto front", "cost",
             f"summed sensitivity ({front['measure']})")
    ax.legend([("chosen", ORANGE, "dot"), ("budget", RED, "dotted")])
    return fig.bytes()


def sensitivity(table: dict) -> bytes | None:
    """A mixed-precision stage's per-layer sensitivity table: output SQNR with only that
    layer quantized, one bar per scheme, from its JSON form."""
    t = SensitivityTable.from_dict(table)
    sqnr = {(r.layer, r.scheme): r.sqnr_db for r in t.rows}

    def db(n, s):  # exact (inf) shows as the 99 dB cap, as in the SQNR plot; n/a as no bar
        v = sqnr.get((n, s))
        return None if v is None or math.isnan(v) else min(v, 99.0)

    schemes = [s for s in t.schemes if any(db(n, s) is not None for n in t.layers)]
    if not t.layers or not schemes:
        return None
    vals = {s: [db(n, s) or 0.0 for n in t.layers] for s in schemes}
    room = _rotated_room(t.layers, 8)
    top = max(max(v) for v in vals.values()) * 1.05 or 1
    fig, ax = _one(max(640, LEFT + RIGHT + 8 * len(t.layers) * len(schemes)), 230 + room,
                   _cats(len(t.layers)), (0, top), bottom=room)
    w = 0.8 / len(schemes)
    for j, s in enumerate(schemes):
        ax.bars([i - 0.4 + w * (j + 0.5) for i in range(len(t.layers))], vals[s], w,
                PALETTE[j % len(PALETTE)])
    ax.frame("per-layer sensitivity (only that layer quantized)", "", "output SQNR, dB",
             xticks=False)
    ax.categories_x(t.layers)
    ax.legend([(s, PALETTE[j % len(PALETTE)], "box") for j, s in enumerate(schemes)])
    return fig.bytes()


__all__ = ["channels_kept", "latency_bars", "layer_sqnr", "layer_times", "metric_vs_latency",
           "mixed_front", "search_curve", "sensitivity", "stage_metrics",
           "weight_histograms"]
