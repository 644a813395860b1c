"""Bad recipes exit with code 2, name the field path and what is allowed, and write nothing."""

import textwrap

import pytest
from click.testing import CliRunner

from slimkit.cli import main
from slimkit.pipeline import RecipeError, parse_recipe

BASE = {"model": {"factory": "slimkit.models:DigitsCNN"}, "data": {"digits": {}},
        "stages": [{"quantize": {"preset": "w8a8"}}]}


def _with(**changes) -> dict:
    import copy

    r = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = r
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[keys[-1]] = value
    return r


@pytest.mark.parametrize("recipe, message", [
    (_with(model={"factory": "slimkit.models:DigitsCNN", "colour": 1}),
     r"model.colour: unknown key; allowed here: \[.*'factory'.*\]"),
    (_with(stages=[{"quantize": {"preset": "w2a2"}}]),
     r"stages\[0\].quantize.preset: Input should be 'w8a8', 'w4a8'"),
    (_with(stages=[{"prune": {"ratio": 1.5}}]),
     r"stages\[0\].prune.ratio: Input should be less than 1"),
    (_with(stages=[{"prune": {"ratio": 0.5, "target_macs": 0.5}}]),
     r"stages\[0\].prune: .*exactly one of ratio, target_macs, target_params"),
    (_with(stages=[{"quantize": {"preset": "w8a8", "per_token_layers": 2}}]),
     r"stages\[0\].quantize: .*per_token_layers chooses layers of preset: dynamic with "
     r"activations: per_tensor"),
    (_with(stages=[{"quantize": {"preset": "w8a8", "activations": "per_tensor"}}]),
     r"stages\[0\].quantize: .*activations chooses the granularity of preset: dynamic"),
    (_with(stages=[{"shrink": {}}]),
     r"stages\[0\]: unknown stage type 'shrink'; allowed: \[.*'prune'.*'quantize'"),
    (_with(stages=[{"quantize": {}}, {"prune": {"ratio": 0.5}}]),
     r"stages\[1\] \(prune\) comes after stages\[0\] \(quantize\)"),
    (_with(stages=[{"quantize": {}}, {"quantize": {}}]),
     r"stages\[1\] quantizes a model stages\[0\] already quantized"),
    (_with(data={"digits": {}, "image_folder": "x"}),
     r"data: .*exactly one of digits, image_folder, text_lines, factory"),
    (_with(budget={"max_drop": "a lot"}), r"budget.max_drop: Input should be a valid number"),
    (_with(stages=[]), r"stages: List should have at least 1 item"),
    ({"data": {"digits": {}}, "stages": [{"export": {}}]}, r"model: required field is missing"),
])
def test_bad_fields_name_their_path_and_the_allowed_values(recipe, message):
    with pytest.raises(RecipeError, match=message):
        parse_recipe(recipe)


def _write(tmp_path, text: str):
    p = tmp_path / "r.yaml"
    p.write_text(textwrap.dedent(text))
    return p


@pytest.mark.parametrize("body, message", [
    ("""
     model: {factory: no_such_module:net}
     data: {digits: {}}
     stages: [{quantize: {}}]
     """, "cannot import 'no_such_module:net'"),
    ("""
     model: {factory: "builtins:dict"}
     data: {digits: {}}
     stages: [{quantize: {}}]
     """, "returned dict, not a torch.nn.Module"),
    ("""
     model: {factory: slimkit.models:DigitsCNN}
     data: {digits: {}}
     stages: [{prune: {ratio: 2}}]
     """, r"stages\[0\].prune.ratio"),
    ("model: [unclosed", "not valid YAML"),
])
def test_the_cli_exits_2_and_writes_nothing(tmp_path, body, message):
    recipe = _write(tmp_path, body)
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["compress", str(recipe), "--out", str(out), "--quiet"])
    assert res.exit_code == 2, res.output
    assert message.replace("\\", "") in res.output or __import__("re").search(message,
                                                                             res.output)
    assert not out.exists()
    res = CliRunner().invoke(main, ["check", str(recipe)])
    assert res.exit_code == 2 and "error:" in res.output


def test_a_missing_recipe_and_a_data_factory_returning_nothing(tmp_path, monkeypatch):
    res = CliRunner().invoke(main, ["check", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2 and "does not exist" in res.output
    (tmp_path / "userdata.py").write_text(textwrap.dedent("""
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        def empty():
            ds = TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))
            return DataLoader(ds), DataLoader(ds)

        def nan_metric(model, loader):
            return float("nan")
        """))
    monkeypatch.chdir(tmp_path)
    recipe = _write(tmp_path, """
        model: {factory: slimkit.models:DigitsCNN}
        data: {factory: "userdata:empty"}
        stages: [{quantize: {}}]
        """)
    res = CliRunner().invoke(main, ["check", str(recipe)])
    assert res.exit_code == 2 and "training set is empty" in res.output
    recipe = _write(tmp_path, """
        model: {factory: slimkit.models:DigitsCNN}
        data: {digits: {}}
        eval: {metric: "userdata:nan_metric", higher_is_better: true}
        stages: [{quantize: {}}]
        """)
    res = CliRunner().invoke(main, ["check", str(recipe)])
    assert res.exit_code == 2 and "returned nan" in res.output


def test_an_untraceable_model_in_a_structured_stage_suggests_unstructured(tmp_path,
                                                                         monkeypatch):
    (tmp_path / "usermodels.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class Branchy(nn.Module):  # data-dependent Python control flow: torch.export fails
            def __init__(self):
                super().__init__()
                self.a, self.b = nn.Linear(64, 32), nn.Linear(32, 10)

            def forward(self, x):
                h = self.a(x.flatten(1))
                if h.sum() > 0:
                    h = h * 2
                return self.b(h)
        """))
    monkeypatch.chdir(tmp_path)
    recipe = _write(tmp_path, """
        model: {factory: "usermodels:Branchy"}
        data: {digits: {}}
        stages: [{prune: {ratio: 0.5, finetune: {epochs: 0}}}]
        """)
    res = CliRunner().invoke(main, ["compress", str(recipe), "--out", str(tmp_path / "o"),
                                    "--quiet"])
    assert res.exit_code == 2, res.output
    assert "granularity: unstructured" in res.output and "torch.export" in res.output


def test_an_unwritable_out_is_a_clear_error(tmp_path):
    recipe = _write(tmp_path, """
        model: {factory: slimkit.models:DigitsCNN}
        data: {digits: {}}
        stages: [{quantize: {}}]
        """)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = CliRunner().invoke(main, ["compress", str(recipe), "--out", str(blocker / "run"),
                                    "--quiet"])
    assert res.exit_code == 2 and "is not writable" in res.output
