"""The accuracy guard: a stage over its budget tries its fallback, keeps the best that fits,
or rolls back — and the report says what was tried and why."""


import pytest

from tests.pipeline.conftest import compressed
from tests.pipeline.recipes import write

GUARDED = """
model:
  factory: slimkit.models:DigitsCNN
  kwargs: {width: 0.25}
  train: {epochs: 4, lr: 0.005}
data: {digits: {}, calib_batches: 2}
budget: {max_drop: 2.0}
stages:
  - prune: {ratio: 0.85, finetune: {epochs: 0}, bisect_steps: 3}
  - quantize: {preset: w4a4, budget: 0.2}
"""


@pytest.mark.slow
def test_over_budget_stages_fall_back_and_say_why(tmp_path):
    recipe = write(tmp_path, GUARDED)
    report = compressed(recipe, tmp_path / "run")
    prune, quant = report["stages"]
    # pruning 85% of every group without fine-tuning breaks the model: bisect the amount
    assert not prune["attempts"][0]["fits"] and len(prune["attempts"]) == 4
    ratios = [a["label"] for a in prune["attempts"]]
    assert ratios[0] == "ratio 0.85" and ratios[1] == "ratio 0.425"
    if prune["skipped"]:
        assert prune["kept"].startswith("skipped") and prune["chosen"] is None
    else:
        kept = prune["attempts"][prune["chosen"]]
        assert kept["fits"] and all(not a["fits"] or a["label"] <= kept["label"]
                                    for a in prune["attempts"])
    # w4a4 without training costs more than its 0.2 points: layers go float, most sensitive first
    assert not quant["attempts"][0]["fits"]
    assert "sensitivity" in quant["info"]
    order = [s["layer"] for s in quant["info"]["sensitivity"]]
    gains = [s["gain"] for s in quant["info"]["sensitivity"]]
    assert gains == sorted(gains, reverse=True) and len(order) == 4
    for a in quant["attempts"][1:]:
        assert "layer(s) float" in a["label"]
    assert report["final"]["total_drop"] <= 2.0 + 1e-9  # the run ends within the budget
    html = (tmp_path / "run" / "report.html").read_text()
    assert "ratio 0.425" in html and "float" in html
