"""The report's SVG plots: well-formed documents whose marks match the numbers given."""

import math
import xml.etree.ElementTree as ET

import pytest

from slimkit.report import plots
from slimkit.report.svg import Figure, nice_ticks, tick_label

NS = "{http://www.w3.org/2000/svg}"


def _svg(data: bytes) -> ET.Element:
    root = ET.fromstring(data)
    assert root.tag == NS + "svg" and float(root.get("width")) > 0
    return root


def _texts(root) -> list[str]:
    return [t.text for t in root.iter(NS + "text")]


@pytest.mark.parametrize("lo,hi", [(0, 1), (98.83, 99.56), (-0.31, 0.29), (0.001, 0.0042),
                                   (3, 2000), (-5e6, 7e6)])
def test_ticks_are_round_evenly_spaced_and_inside(lo, hi):
    t = nice_ticks(lo, hi)
    assert 3 <= len(t) <= 11
    assert all(lo - 1e-9 <= v <= hi + 1e-9 for v in t)
    steps = {round(b - a, 9) for a, b in zip(t, t[1:], strict=False)}
    assert len(steps) == 1
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5))
    assert len({tick_label(v) for v in t}) == len(t)  # labels tell the ticks apart


def test_panel_maps_limits_to_its_edges():
    fig = Figure(200, 100)
    p = fig.panel(10, 20, 180, 60, (0, 4), (-1, 1))
    assert (p.px(0), p.px(4), p.py(-1), p.py(1)) == (10, 190, 80, 20)


def test_bar_plots_draw_one_bar_per_layer_with_its_height():
    layers = [{"layer": f"blocks.{i}.conv", "weight_sqnr": 30 + i} for i in range(5)]
    layers.append({"layer": "fc", "weight_sqnr": math.inf})  # exact: shown capped, not lost
    root = _svg(plots.layer_sqnr(layers))
    bars = [r for r in root.iter(NS + "rect") if r.get("fill") == plots.BLUE]
    assert len(bars) == 6
    heights = [float(b.get("height")) for b in bars]
    assert heights == sorted(heights) and heights[-1] > heights[0]
    assert {la["layer"] for la in layers} <= set(_texts(root))


def test_histograms_one_panel_per_layer_and_names_escaped():
    hist = {"edges": [-1, -0.5, 0, 0.5, 1], "float": [1, 5, 6, 2], "quant": [0, 6, 6, 2]}
    layers = [{"layer": f"l{i}<&>", "weight_sqnr": 40.0, "hist": hist} for i in range(6)]
    root = _svg(plots.weight_histograms(layers))
    assert len(list(root.iter(NS + "polygon"))) == 6  # the float distributions, filled
    assert len([p for p in root.iter(NS + "polyline")
                if p.get("stroke") == plots.ORANGE]) == 6
    assert "l0<&> (40.0 dB)" in _texts(root)


def test_every_report_plot_renders_from_report_json_alone():
    report = {"stages": [
        {"index": 0, "kind": "prune", "chosen": 1, "metric": 98.0,
         "attempts": [{"latency_ms": 1.0, "metric": 97.0}, {"latency_ms": 0.8, "metric": 98.0}]},
        {"index": 1, "kind": "quantize", "chosen": 0, "metric": 97.8,
         "attempts": [{"latency_ms": 0.4, "metric": 97.8}]}],
        "source": {"metric": 98.5}, "budget": {"max_drop": 1.0}, "metric": {"unit": "% top-1"}}
    root = _svg(plots.metric_vs_latency(report))
    assert len(list(root.iter(NS + "circle"))) >= 3 and "1:quantize" in _texts(root)
    _svg(plots.stage_metrics(report))
    rows = [{"model": "original", "runtime": "ort", "median_ms": 2.0},
            {"model": "final", "runtime": "openvino", "median_ms": 0.5}]
    assert len([r for r in _svg(plots.latency_bars(rows, "1")).iter(NS + "rect")
                if r.get("fill") in plots.RUNTIME_COLORS.values()]) == 2
    view = {"runtime": "ort", "precision": "int8",
            "rows": [{"layer": "conv1", "before_ms": 1.0, "after_ms": 0.3},
                     {"layer": "fc", "before_ms": 0.2, "after_ms": None}]}
    _svg(plots.layer_times(view, "1"))
    _svg(plots.channels_kept([{"module": "c1", "params_before": 10, "params_after": 5}]))
    _svg(plots.search_curve([[0, 0.5], [1, 0.7], [2, 0.6]],
                            {"axes": ["acc", "ms"], "all": [[0.5, 2], [0.7, 3]],
                             "front": [[0.7, 3], [0.5, 2]]}))
    _svg(plots.mixed_front({"front": [{"cost": 1, "sensitivity": 0.1},
                                      {"cost": 2, "sensitivity": 0.01}],
                            "chosen": {"cost": 2, "sensitivity": 0.01}, "budget": 2.5,
                            "measure": "noise"}))
    assert plots.metric_vs_latency({**report, "stages": []}) is None
    assert plots.layer_sqnr([]) is None and plots.search_curve([], {}) is None


def test_sensitivity_groups_one_bar_per_layer_and_scheme():
    from slimkit.quant.mixed_precision.table import SensitivityRow, SensitivityTable

    rows = [SensitivityRow(la, s, v) for la, s, v in [
        ("a", "int8", 40.0), ("a", "int4", 20.0), ("b", "int8", math.inf), ("b", "int4", None)]]
    table = SensitivityTable(("a", "b"), ("int8", "int4"), tuple(rows)).to_dict()
    root = _svg(plots.sensitivity(table))
    fills = [r.get("fill") for r in root.iter(NS + "rect")]
    from slimkit.report.svg import PALETTE

    assert fills.count(PALETTE[0]) == 2 + 1 and fills.count(PALETTE[1]) == 2 + 1  # + legend
    assert {"int8", "int4", "a", "b"} <= set(_texts(root))
