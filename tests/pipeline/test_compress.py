"""slimkit compress end to end on a small recipe: the artifact, the report (every number in the
HTML equals the JSON), resume (finished stages are loaded, a changed stage re-runs with every
stage after it), the run directory's ownership."""

import json
import re
import shutil
from html.parser import HTMLParser

import pytest
import torch
from click.testing import CliRunner

import slimkit as sk
from slimkit.cli import main
from slimkit.data.digits import digits_tensors
from slimkit.metrics import top1
from slimkit.report import fmt, lookup
from tests.pipeline.conftest import _compress
from tests.pipeline.recipes import write


def test_the_run_directory_holds_artifact_exports_report_and_log(run):
    _, _, out, output = run
    for f in ("model/manifest.json", "model/model.onnx", "export/model.onnx", "report.html",
              "report.json", "log.txt", "recipe.yaml", "run.json"):
        assert (out / f).is_file(), f
    assert "report.html" in output and "final:" in output
    assert not list(out.glob("stages/*/ckpt-*"))  # finished stages drop their checkpoints


def test_the_final_artifact_reproduces_the_reported_metric(run):
    _, _, out, _ = run
    report = json.loads((out / "report.json").read_text())
    model = sk.load(out / "model")
    val = torch.utils.data.DataLoader(digits_tensors()[1], batch_size=256)
    assert top1(model, val) == pytest.approx(report["final"]["metric"], abs=1e-9)
    steps = sk.record_of(model).steps
    # distillation changed weights, not structure; the benchmark's choice is information
    assert [s.kind for s in steps] == ["prune", "quantize", "deployment"]
    assert report["final"]["total_drop"] <= report["budget"]["max_drop"] + 1e-9
    fastest = report["stages"][-1]["info"]["fastest"]["1"]
    assert fastest["runtime"] in ("torch", "ort") and fastest["model"] == "2:quantize"
    # the artifact's manifest carries the choice and the machine it was measured on
    from slimkit.target import detect

    assert steps[-1].config["fastest"]["1"]["runtime"] == fastest["runtime"]
    assert detect().model in steps[-1].config["machine"]


class _Numbers(HTMLParser):
    """(data-k path, format, shown text) of every tagged number, and every table cell."""

    def __init__(self):
        super().__init__()
        self.tagged, self.cells, self._stack = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._stack.append((tag, a.get("data-k"), a.get("data-f"), []))

    def handle_endtag(self, tag):
        t, k, f, text = self._stack.pop()
        s = "".join(text).strip()
        if k is not None:
            self.tagged.append((k, f, s))
        if t == "td":
            self.cells.append((s, any(p[1] for p in self._stack) or k is not None))
        if self._stack:
            self._stack[-1][3].append(s if k is None else f"«{s}»")

    def handle_data(self, data):
        if self._stack:
            self._stack[-1][3].append(data)


def test_every_number_the_html_shows_equals_the_json(run):
    _, _, out, _ = run
    report = json.loads((out / "report.json").read_text())
    p = _Numbers()
    p.feed((out / "report.html").read_text())
    assert len(p.tagged) > 50
    for path, kind, shown in p.tagged:
        assert shown == fmt(lookup(report, path), kind), path
    # no table cell shows a bare number that did not come from the JSON
    bare = [s for s, _ in p.cells if re.fullmatch(r"[-+]?[\d,.]+×?", s)]
    assert bare == []


def test_plots_are_inline_images(run):
    _, _, out, _ = run
    html = (out / "report.html").read_text()
    imgs = re.findall(r'<img alt="([^"]+)" src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"',
                      html)
    alts = {a for a, _ in imgs}
    assert {"metric vs latency", "metric per stage", "weight histograms", "SQNR per layer",
            "pruning per layer", "latency batch 1"} <= alts
    import base64
    import xml.etree.ElementTree as ET

    for _, data in imgs:  # each a well-formed SVG document with marks in it
        root = ET.fromstring(base64.b64decode(data))
        assert root.tag == "{http://www.w3.org/2000/svg}svg" and len(root) > 5
    assert "http://" not in html and "https://" not in html and "<script" not in html


def test_rerunning_loads_finished_stages_and_a_changed_stage_reruns_from_there(run, tmp_path):
    tmp, recipe, out, _ = run
    out2 = tmp_path / "run"
    shutil.copytree(out, out2)
    before = {p.parent.name: p.stat().st_mtime_ns for p in out2.glob("stages/*/result.json")}
    code, output = _compress(recipe, out2)
    assert code == 0, output
    after = {p.parent.name: p.stat().st_mtime_ns for p in out2.glob("stages/*/result.json")}
    assert after == before  # nothing re-ran
    changed = write(tmp_path, name="changed.yaml",
                    **{"quantize: {preset: w8a8}": "quantize: {preset: w8a8, observer: mse}"})
    code, output = _compress(changed, out2)
    assert code == 0, output
    again = {p.parent.name: p.stat().st_mtime_ns for p in out2.glob("stages/*/result.json")}
    assert [k for k in sorted(again) if again[k] != before[k]] == [
        "02-quantize", "03-export", "04-benchmark"]


def test_an_out_dir_of_another_recipe_is_refused_unless_forced(run, tmp_path):
    tmp, _, out, _ = run
    other = write(tmp_path, name="other.yaml", **{"width: 0.25": "width: 0.5"})
    code, output = _compress(other, out)
    assert code == 2 and "holds a run of another recipe" in output and "--force" in output
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "thesis.tex").write_text("mine")
    code, output = _compress(other, stray)
    assert code == 2 and "not a slimkit run directory" in output
    assert (stray / "thesis.tex").read_text() == "mine"


def test_check_prints_every_stage_plan_without_writing(run):
    _, recipe, _, _ = run
    res = CliRunner().invoke(main, ["check", str(recipe)])
    assert res.exit_code == 0, res.output
    for part in ("stages[0] prune", "params ×", "stages[2] quantize", "quantization plan",
                 "stages[4] benchmark"):
        assert part in res.output, part


def test_report_rebuilds_and_inspect_reads_an_artifact(run):
    _, _, out, _ = run
    (out / "report.html").unlink()
    res = CliRunner().invoke(main, ["report", str(out)])
    assert res.exit_code == 0 and (out / "report.html").is_file()
    res = CliRunner().invoke(main, ["inspect", str(out / "model")])
    assert res.exit_code == 0 and "quantization plan" in res.output
    res = CliRunner().invoke(main, ["inspect", "slimkit.models:DigitsCNN", "--shape", "1,8,8"])
    assert res.exit_code == 0, res.output
    assert "prunable channel groups (3)" in res.output and "MACs at batch 1: 2,382,848" in \
        res.output


def test_the_report_shows_where_the_time_goes_per_layer(run):
    _, _, out, _ = run
    report = json.loads((out / "report.json").read_text())
    bi = next(i for i, s in enumerate(report["stages"]) if s["kind"] == "benchmark")
    view = report["stages"][bi]["info"]["layers"]["1"]
    assert view["runtime"] == report["stages"][bi]["info"]["fastest"]["1"]["runtime"]
    assert view["rows"] and all(r["before_ms"] >= 0 for r in view["rows"])
    assert {"features.0.0", "classifier.2"} <= {r["layer"] for r in view["rows"]}
    html = (out / "report.html").read_text()
    assert 'id="per-layer"' in html and "per-layer time batch 1" in html  # section + plot
    assert f'data-k="stages.{bi}.info.layers.1.rows.0.before_ms"' in html
