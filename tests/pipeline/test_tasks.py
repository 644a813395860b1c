"""Any task through the pipeline: the task is stated or inferred (and said why), each stage
trains with its loss, the budget follows the metric's direction — and everything that would do
nothing, or does not fit, is refused with exit code 2 before anything is written."""

import json
import textwrap

import pytest
import torch
from click.testing import CliRunner

from slimkit.cli import main
from tests.pipeline.conftest import _compress, compressed
from tests.pipeline.recipes import write

REGRESSION = """
model:
  factory: slimkit.examples.tasks:diabetes_mlp
  kwargs: {hidden: 16}
  train: {epochs: 10, lr: 0.003, batch_size: 32}
data: {factory: slimkit.examples.tasks:diabetes_loaders, batch_size: 32, calib_batches: 2}
budget: {max_drop: 0.2}
stages:
  - prune: {ratio: 0.25, finetune: {epochs: 2}}
  - distill: {epochs: 2, alpha: 0.5}
  - quantize: {preset: w8a8}
  - export: {runtimes: [ort]}
"""

TWO_INPUTS = """
model: {factory: slimkit.examples.tasks:TwoInputNet, kwargs: {width: 4}, train: {epochs: 2}}
data: {factory: slimkit.examples.tasks:two_input_loaders, calib_batches: 2}
budget: {max_drop: 5.0}
stages:
  - prune: {ratio: 0.25, finetune: {epochs: 1}}
  - quantize: {preset: w8a8}
  - export: {runtimes: [ort]}
"""


def _check(recipe) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["check", str(recipe)])
    return res.exit_code, res.output


def test_check_says_which_task_and_why(tmp_path):
    code, out = _check(write(tmp_path, REGRESSION))
    assert code == 0, out
    assert ("task regression (loss mse, metric mse) — inferred: Tensor[32, 1] float32 targets "
            "are real values; lower MSE is better") in out
    assert "fine-tune 2 epoch(s) with regression: mse" in out
    code, out = _check(write(tmp_path, REGRESSION.replace("budget:", "task: {kind: regression, "
                                                          "loss: huber}\nbudget:")))
    assert code == 0 and "task regression (loss huber, metric mse) — stated in the recipe" in out


def test_a_regressor_is_compressed_under_an_mse_budget(tmp_path):
    code, out = _compress(write(tmp_path, REGRESSION), tmp_path / "run")
    assert code == 0, out
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["metric"] == {"name": "mse", "unit": "MSE", "higher_is_better": False}
    assert report["task"]["kind"] == "regression"
    src, stages = report["source"]["metric"], report["stages"]
    for s in stages:  # a drop is a rise of the MSE
        assert s["total_drop"] == pytest.approx(s["metric"] - src)
    assert report["final"]["total_drop"] <= 0.2 + 1e-9
    quant = stages[2]
    schemes = [e["scheme"] for e in quant["info"]["plan"]["layers"]]
    assert not quant["skipped"] and any(s != "float" for s in schemes)
    parity = stages[3]["info"]["parity"]["summary"]
    assert "relative error" in parity and "top-1" not in parity
    assert "rise" in out and "top-1" not in out


def test_a_two_input_model_runs_through_every_stage(tmp_path):
    report = compressed(write(tmp_path, TWO_INPUTS), tmp_path / "run")
    assert report["task"]["kind"] == "classification"
    assert [s["skipped"] for s in report["stages"]] == [False, False, False]
    assert report["stages"][2]["info"]["parity"]["top1_agreement"] > 0.9


USER = '''
import torch
from torch.utils.data import DataLoader, TensorDataset

g = torch.Generator().manual_seed(0)
X = torch.randn(64, 10, generator=g)


def tuple1():
    ds = TensorDataset(X)  # batches (x,): no target
    return DataLoader(ds), DataLoader(ds)


def tuple3():
    ds = TensorDataset(X, torch.zeros(64, dtype=torch.long), torch.ones(64))
    return DataLoader(ds), DataLoader(ds)


def floats():
    ds = TensorDataset(X, torch.randn(64, 1, generator=g))
    return DataLoader(ds), DataLoader(ds)


def classes():
    ds = TensorDataset(X, torch.randint(0, 2, (64, 1), generator=g))
    return DataLoader(ds), DataLoader(ds)


class Dicts(torch.utils.data.Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        return {"pixels": X[i], "labels": 0}


def dicts():
    return DataLoader(Dicts()), DataLoader(Dicts())


def constant_loss(outputs, batch):
    return torch.tensor(1.0)


def mean_out(model, loader):
    return float(sum(model(x).mean() for x, _ in loader))
'''


@pytest.fixture
def user(tmp_path, monkeypatch):
    (tmp_path / "taskdata.py").write_text(USER)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _recipe(tmp_path, data: str, extra: str = "", model: str = "") -> object:
    model = model or "model: {factory: slimkit.examples.tasks:diabetes_mlp, kwargs: {hidden: 8}}"
    text = "\n".join([model, f'data: {{factory: "taskdata:{data}"}}', extra,
                      "stages: [{prune: {ratio: 0.5, finetune: {epochs: 1}}}]"])
    return write(tmp_path, text, name="bad.yaml")


@pytest.mark.parametrize("data, extra, message", [
    ("floats", "task: classification", "cross-entropy needs class indices.*state task: "
                                       "regression"),
    ("classes", "task: regression", "MSE on class indices.*state task: classification"),
    ("floats", "task: {kind: custom, loss: 'taskdata:constant_loss'}\n"
               "eval: {metric: 'taskdata:mean_out', higher_is_better: true}",
     "does not depend on the model's parameters"),
    ("floats", "eval: {metric: top1}", "metric 'top1' does not fit task regression"),
    ("tuple3", "", r"a tuple of 3 items is ambiguous.*accepted|a batch must be x, \(x,\)"),
    ("dicts", "", r"keys \['pixels'\] are not parameters of Sequential.forward"),
])
def test_bad_data_and_tasks_exit_2_naming_the_cause_and_write_nothing(user, data, extra,
                                                                       message):
    recipe = _recipe(user, data, extra)
    code, out = _compress(recipe, user / "run")
    assert code == 2, out
    assert out.startswith("error: ") and "Traceback" not in out
    import re

    assert re.search(message, out), out
    assert not (user / "run").exists()


def test_a_one_tuple_batch_is_unlabelled_data(user):
    code, out = _check(_recipe(user, "tuple1"))
    assert code == 0, out
    assert "task embedding" in out and "inferred: the batches carry no target" in out


def test_a_prune_target_nothing_can_reach_is_refused_before_the_run(user):
    recipe = write(user, textwrap.dedent("""
        model: {factory: slimkit.examples.tasks:diabetes_mlp, kwargs: {hidden: 8}}
        data: {factory: "taskdata:floats"}
        stages: [{prune: {granularity: head, ratio: 0.5}}]
        """), name="heads.yaml")
    code, out = _compress(recipe, user / "run")
    assert code == 2 and "reached 0% of its target" in out and "allow_partial: true" in out
    assert not (user / "run").exists()


@pytest.mark.parametrize("make, message", [
    (lambda p, sd: p.write_bytes(_safetensors(sd)[:100]), "not a readable safetensors file"),
    (lambda p, sd: p.write_bytes(b"\x80\x04junk" * 10), "not a PyTorch weights file"),
    (lambda p, sd: torch.save({"w": torch.zeros(3)}, p),
     r"does not fit Sequential: 6 missing: 0.weight, 0.bias.*1 unexpected: w"),
    (lambda p, sd: torch.save({**sd, "0.weight": torch.zeros(8, 3)}, p),
     r"1 mis-shaped: 0.weight \[8, 3\] \(model: \[8, 10\]\)"),
])
def test_weights_that_do_not_load_are_refused_by_name(user, make, message):
    from slimkit.examples.tasks import diabetes_mlp

    sd = diabetes_mlp(8).state_dict()
    suffix = ".safetensors" if "safetensors" in message else ".pt"
    path = user / f"w{suffix}"
    make(path, sd)
    recipe = _recipe(user, "floats", model="model: {factory: slimkit.examples.tasks:"
                     f"diabetes_mlp, kwargs: {{hidden: 8}}, weights: {path.name}}}")
    code, out = _compress(recipe, user / "run")
    import re

    assert code == 2 and re.search(message, out), out
    assert not (user / "run").exists()


def _safetensors(sd) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in sd.items()})
