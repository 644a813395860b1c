"""The run report: report.json (every number) → report.html, one self-contained file (plots
inline as SVG, no script, no network). Every number the HTML shows is rendered from the JSON
through `fmt`, tagged with the path it came from (data-k), so a test can check them all."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from markupsafe import Markup, escape

from slimkit.atomic import write_atomic
from slimkit.errors import SlimkitError
from slimkit.report import plots
from slimkit.task import Task

FORMATS = {
    "metric": lambda v: f"{v:.4g}",
    "drop": lambda v: f"{v:+.3g}",
    "int": lambda v: f"{int(v):,}",
    "ms": lambda v: f"{v:.3g}",
    "x": lambda v: f"{v:.2f}×",
    "s": lambda v: f"{v:.1f}",
    "db": lambda v: "exact" if v is None or v == float("inf") else f"{v:.1f}",
}


def fmt(value, kind: str) -> str:
    return "—" if value is None else FORMATS[kind](value)


def lookup(report: dict, path: str):
    node = report
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list | tuple) else node[part]
    return node


def _k(report: dict):
    def k(path: str, kind: str) -> Markup:
        v = lookup(report, path)
        return Markup(f'<span data-k="{escape(path)}" data-f="{kind}">'
                      f"{escape(fmt(v, kind))}</span>")
    return k


def _img(svg: bytes | None, alt: str) -> Markup:
    if svg is None:
        return Markup("")
    data = base64.b64encode(svg).decode()
    return Markup(f'<img alt="{escape(alt)}" src="data:image/svg+xml;base64,{data}">')


def render(report: dict) -> str:
    from jinja2 import Environment

    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    quant = [(i, s) for i, s in enumerate(report["stages"]) if s["info"].get("layers") and
             s["kind"] == "quantize"]
    prune = [(i, s) for i, s in enumerate(report["stages"]) if s["kind"] == "prune"
             and s["info"].get("layers")]
    bench = next(((i, s) for i, s in enumerate(report["stages"]) if s["kind"] == "benchmark"),
                 None)
    figs = {"mvl": _img(plots.metric_vs_latency(report), "metric vs latency"),
            "stages": _img(plots.stage_metrics(report), "metric per stage")}
    for i, s in quant:
        figs[f"hist{i}"] = _img(plots.weight_histograms(s["info"]["layers"]),
                                "weight histograms")
        figs[f"sqnr{i}"] = _img(plots.layer_sqnr(s["info"]["layers"]), "SQNR per layer")
    for i, s in prune:
        figs[f"prune{i}"] = _img(plots.channels_kept(s["info"]["layers"]), "pruning per layer")
    for i, s in enumerate(report["stages"]):
        if s["kind"] == "mixed_precision" and s["info"].get("fronts"):
            figs[f"mixed{i}"] = _img(plots.mixed_front(s["info"]["fronts"][-1]),
                                     "mixed-precision front")
        if s["kind"] == "mixed_precision" and s["info"].get("sensitivity"):
            figs[f"sens{i}"] = _img(plots.sensitivity(s["info"]["sensitivity"]),
                                    "per-layer sensitivity")
        if s["kind"] == "search":
            figs[f"search{i}"] = _img(plots.search_curve(s["info"].get("curve", []),
                                                         s["info"].get("pareto", {})),
                                      "search curve")
    if bench is not None:
        for b, rows in bench[1]["info"]["batches"].items():
            figs[f"lat{b}"] = _img(plots.latency_bars(rows, b), f"latency batch {b}")
        for b, view in bench[1]["info"].get("layers", {}).items():
            figs[f"layers{b}"] = _img(plots.layer_times(view, b), f"per-layer time batch {b}")
    tpl = env.from_string((Path(__file__).with_name("template.html")).read_text())
    return tpl.render(r=report, k=_k(report), figs=figs, quant=quant, prune=prune,
                      bench=bench, json=json, parity_keys=_parity_keys)


PARITY_NAMES = {"top1_agreement": "top-1 agreement", "cosine": "cosine",
                "cosine_min": "least cosine", "rel_error": "relative error",
                "max_abs_diff": "max |diff|", "label_agreement": "label agreement"}


def _parity_keys(kind: str | None) -> list[tuple[str, str]]:
    """(key, label) of the parity measures that mean something for the run's task."""
    keys = Task.of(kind or "classification").parity_keys() if kind != "custom" else (
        "rel_error", "cosine")
    return [(k, PARITY_NAMES[k]) for k in keys]


def write_html(report: dict, path: str | Path) -> Path:
    return write_atomic(path, render(report))


def rebuild(run_dir: str | Path) -> Path:
    """`slimkit report DIR`: report.html again from report.json."""
    run_dir = Path(run_dir)
    f = run_dir / "report.json"
    if not f.is_file():
        raise SlimkitError(f"{run_dir} holds no report.json: is it a `slimkit compress --out` "
                           "directory of a finished run?")
    return write_html(json.loads(f.read_text()), run_dir / "report.html")


__all__ = ["fmt", "lookup", "rebuild", "render", "write_html"]
