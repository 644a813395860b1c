"""Sensitivity table, its cache, Hutchinson traces, size costs and the auto config."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import slimkit as sk
from slimkit.errors import CalibrationError
from slimkit.quant.algorithms.common import float_reference
from slimkit.quant.mixed_precision import (
    SizeCost,
    auto_config,
    default_schemes,
    hutchinson_traces,
    plot_pareto,
    plot_sensitivity,
    sensitivity,
)
from slimkit.quant.mixed_precision.table import SensitivityTable
from tests.quant.algorithms.nets import SmallCNN, image_batches, randomize_bn


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = randomize_bn(SmallCNN())
    data = [(x, torch.randint(0, 5, (16,), generator=torch.Generator().manual_seed(i)))
            for i, x in enumerate(image_batches(2))]
    return model, data


def _loss(y, b):
    return F.cross_entropy(y, b[1])


def test_table_orders_schemes_sensibly_and_round_trips(setup, tmp_path):
    model, data = setup
    tab = sensitivity(model, data, default_schemes(), loss_fn=_loss, hutchinson_probes=2,
                      cache_dir=tmp_path)
    assert tab.layers == ("c1", "dw", "c2", "fc")
    for n in tab.layers:
        assert tab.get(n, "float").sqnr_db == float("inf")
        assert tab.get(n, "int8").sqnr_db > tab.get(n, "w4").sqnr_db + 6  # 4 bits fewer
        assert tab.get(n, "w4").hawq is not None and n in tab.hessian_trace  # CE: not PSD
    assert SensitivityTable.from_dict(json.loads(json.dumps(tab.to_dict()))) == tab
    assert "c2" in str(tab) and plot_sensitivity(tab)[:8] == b"\x89PNG\r\n\x1a\n"
    files = list(tmp_path.glob("sensitivity-*.json"))
    assert len(files) == 1 and tab.key in files[0].name
    # cached: same key, read back; other weights: another key
    assert sensitivity(model, data, default_schemes(), loss_fn=_loss, hutchinson_probes=2,
                       cache_dir=tmp_path) == tab
    other = randomize_bn(SmallCNN(), seed=1)
    tab2 = sensitivity(other, data, {"int8": default_schemes()["int8"]}, cache_dir=tmp_path)
    assert tab2.key != tab.key and len(list(tmp_path.glob("*.json"))) == 2


def test_hutchinson_is_exact_for_a_diagonal_hessian():
    model = nn.Sequential(nn.Linear(1, 4, bias=False))
    xs = [torch.randn(8, 1, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    data = [(x, torch.zeros(8, 4)) for x in xs]
    tr = hutchinson_traces(model, ["0"], data, lambda y, b: 0.5 * (y - b[1]).pow(2).sum(), 3)
    expected = sum(4 * float(x.pow(2).sum()) for x in xs) / 3  # H = I_4 · Σx²
    assert tr["0"] == pytest.approx(expected, rel=1e-5)


def test_size_cost_is_the_real_state_of_the_quantized_layer(setup):
    model, data = setup
    ref = float_reference(model)
    cost = SizeCost(ref)
    for name, spec in default_schemes().items():
        if spec is None:
            continue
        cfg = sk.QuantConfig(spec)
        q = sk.quantize(model, cfg, [d[0] for d in data], progress=False)
        sd = q.state_dict()
        for layer in ("c1", "c2", "fc"):
            real = sum(t.numel() * t.element_size() for k, t in sd.items()
                       if k.startswith(layer + "."))
            assert cost(layer, spec) == real, (name, layer)


def test_auto_config_fits_the_budget_and_quantizes(setup):
    model, data = setup
    tab = sensitivity(model, data, default_schemes())
    ref_cost = SizeCost(float_reference(model))
    budget = 0.3 * sum(ref_cost(n, None) for n in tab.layers)
    cfg, res = auto_config(model, data, budget, table=tab)
    q = sk.quantize(model, cfg, [d[0] for d in data], progress=False)
    sd = q.state_dict()
    real = sum(t.numel() * t.element_size() for k, t in sd.items()
               if k.split(".")[0] in tab.layers)
    assert real == res.chosen.cost <= budget
    assert plot_pareto(res)[:4] == b"\x89PNG"


def test_nan_in_sensitivity_data_is_refused(setup):
    model, data = setup
    bad = [(data[0][0].clone(), data[0][1])]
    bad[0][0][0, 0, 0, 0] = float("nan")
    with pytest.raises(CalibrationError, match="NaN"):
        sensitivity(model, bad, {"int8": default_schemes()["int8"]})


def test_quantconfig_auto_is_the_same_construction(setup):
    model, data = setup
    tab = sensitivity(model, data, default_schemes())
    cfg, res = auto_config(model, data, 4000, table=tab)
    cfg2, res2 = auto_config(model, data, 4000, table=tab)
    assert cfg == cfg2 and res.chosen == res2.chosen
