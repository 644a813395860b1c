"""The one API: configs from dicts, stage order, bad input named, NaN data refused."""

import io

import pytest
import torch

import slimkit as sk
from slimkit.errors import CalibrationError, ConfigError
from slimkit.quant import algorithms as qa
from slimkit.quant.algorithms.report import config_dict
from tests.quant.algorithms.nets import OutlierMLP, SmallCNN, image_batches, outlier_batches

CONFIGS = [qa.CLE(), qa.BiasCorrection(), qa.GPTQ(act_order=True), qa.AdaRound(iterations=5),
           qa.SmoothQuant(alphas=(0.25, 0.5)), qa.AWQ(grid=4), qa.Log2Activations(bits=3)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: type(c).__name__)
def test_every_config_round_trips_through_a_dict(cfg):
    name = qa.ALGORITHMS[type(cfg)].name
    assert qa.algorithm_from_dict({name: config_dict(cfg)}) == cfg
    as_yaml = {k: list(v) if isinstance(v, tuple) else v for k, v in config_dict(cfg).items()}
    assert type(cfg).from_dict(as_yaml) == cfg


def test_bad_configs_name_the_field():
    with pytest.raises(ConfigError, match="unknown field"):
        qa.GPTQ.from_dict({"dampening": 0.1})
    with pytest.raises(ConfigError, match="algorithm 'gpt' unknown"):
        qa.algorithm_from_dict({"gpt": {}})
    with pytest.raises(ConfigError, match="SmoothQuant.search"):
        qa.SmoothQuant(search="everywhere")
    with pytest.raises(ConfigError, match="GPTQ.damp"):
        qa.GPTQ(damp=2.0)


def test_stage_errors():
    model, calib = OutlierMLP().eval(), outlier_batches(2)
    q = sk.quantize(model, sk.QuantConfig.w8a8(), calib, progress=False)
    with pytest.raises(ConfigError, match="before sk.quantize"):
        qa.apply(q, qa.CLE())
    with pytest.raises(ConfigError, match="pass a model from sk.quantize"):
        qa.apply(model, qa.GPTQ(), calib)
    with pytest.raises(ConfigError, match="must come before"):
        qa.ptq(model, sk.QuantConfig.w8a8(), calib, [qa.BiasCorrection(), qa.CLE()])


def test_ptq_runs_steps_in_order_and_the_state_dict_round_trips():
    torch.manual_seed(0)
    calib = image_batches(2)
    steps = [{"cle": {}}, {"gptq": {"min_rows_per_column": 0.1}},
             {"bias_correction": {}}]
    q = qa.ptq(SmallCNN().eval(), sk.QuantConfig.w4a8(), calib, steps)
    rep = sk.record_of(q).report
    assert [s.algorithm for s in rep.steps] == ["cle", "gptq", "bias_correction"]
    assert "cle" in str(rep) and len(rep.to_dict()["steps"]) == 3
    buf = io.BytesIO()
    torch.save(q.state_dict(), buf)
    fresh = qa.ptq(SmallCNN().eval(), sk.QuantConfig.w4a8(), calib, steps)
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    x = image_batches(1, seed=4)[0]
    assert torch.equal(fresh(x), q(x))


@pytest.mark.parametrize("cfg", [qa.BiasCorrection(), qa.AdaRound(iterations=2),
                                 qa.SmoothQuant(), qa.AWQ(), qa.Log2Activations()],
                         ids=lambda c: type(c).__name__)
def test_nan_in_calibration_data_is_refused(cfg):
    model = OutlierMLP().eval()
    calib = outlier_batches(2)
    calib[1][0, 0] = float("nan")
    stage = qa.ALGORITHMS[type(cfg)].stage
    qcfg = sk.QuantConfig.weight_only(4) if isinstance(cfg, qa.AWQ) else sk.QuantConfig.w8a8()
    if stage == "float":
        with pytest.raises(CalibrationError, match="NaN"):
            qa.apply(model, cfg, calib, qconfig=qcfg)
    else:
        q = sk.quantize(model, qcfg, calib[:1], progress=False)
        with pytest.raises(CalibrationError, match="NaN"):
            qa.apply(q, cfg, calib)


@pytest.mark.parametrize("steps,cfg,mlp", [
    ([qa.CLE(), qa.GPTQ(min_rows_per_column=0.1), qa.BiasCorrection()], sk.QuantConfig.w4a8(),
     False),
    ([qa.SmoothQuant(), qa.AdaRound(iterations=5, max_samples=16)], sk.QuantConfig.w8a8(), False),
    ([qa.AWQ(), qa.GPTQ()], sk.QuantConfig.weight_only(4, 16), True),
    ([qa.Log2Activations(bits=4)], sk.QuantConfig.w4a8(), False),
], ids=["cle-gptq-bc", "sq-adaround", "awq-gptq", "log2"])
def test_every_step_survives_save_and_load(tmp_path, steps, cfg, mlp):
    torch.manual_seed(0)
    model = OutlierMLP().eval() if mlp else SmallCNN().eval()
    calib = outlier_batches(4) if mlp else image_batches(2)
    q = qa.ptq(model, cfg, calib, steps)
    kinds = [s.kind for s in sk.record_of(q).steps]
    assert kinds == [qa.ALGORITHMS[type(s)].name for s in steps
                     if qa.ALGORITHMS[type(s)].stage == "float"] + ["quantize"] + [
        qa.ALGORITHMS[type(s)].name for s in steps if qa.ALGORITHMS[type(s)].stage != "float"]
    sk.save(q, tmp_path / "art")
    back = sk.load(tmp_path / "art")
    x = outlier_batches(1, seed=6)[0] if mlp else image_batches(1, seed=6)[0]
    assert torch.equal(back(x), q(x))
