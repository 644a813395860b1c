"""The table `slimkit compress` ends with (rich), and where everything was written."""

from __future__ import annotations

from pathlib import Path

from slimkit.report import fmt


def summary(report: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    unit = report["metric"]["unit"]
    t = Table(title=f"slimkit compress — {report['recipe']}", title_justify="left")
    for col in ("stage", unit, "drop", "params", "MACs", "artifact bytes", "s", "kept"):
        t.add_column(col, justify="left" if col in ("stage", "kept") else "right")
    src = report["source"]
    t.add_row("original", fmt(src["metric"], "metric"), "", fmt(src["params"], "int"),
              fmt(src["macs"], "int"), "", "", "")
    for s in report["stages"]:
        t.add_row(f"{s['index']}: {s['kind']}", fmt(s["metric"], "metric"),
                  fmt(s["total_drop"], "drop"), fmt(s["params"], "int"), fmt(s["macs"], "int"),
                  fmt(s["artifact_bytes"], "int"), fmt(s["seconds"], "s"), s["kept"])
    console = Console(width=140)
    console.print(t)
    bench = next((s for s in report["stages"] if s["kind"] == "benchmark"), None)
    if bench is not None:
        console.print(bench["info"].get("table", "").strip())
    for s in report["stages"]:
        p = s["info"].get("parity") if s["kind"] == "export" else None
        if p:  # the int8 file in ONNX Runtime against slimkit's simulation of it
            console.print(f"parity, ONNX Runtime vs simulation: {p['summary']}")
    fin = report["final"]
    worse = "rise" if report["metric"].get("higher_is_better") is False else "drop"
    console.print(f"final: {unit} {fmt(fin['metric'], 'metric')} ({worse} "
                  f"{fmt(fin['total_drop'], 'drop')} of at most "
                  f"{fmt(report['budget']['max_drop'], 'metric')}), "
                  f"run {fmt(report['seconds'], 's')} s")
    console.print(f"artifact: {out / 'model'}   report: {out / 'report.html'}")
