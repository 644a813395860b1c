"""Public flows: quantize / prepare_qat / convert, the plan, state_dict round trips, errors."""

import io

import pytest
import torch
from torch import nn

import slimkit as sk
from slimkit.errors import CalibrationError, ConfigError
from slimkit.models import DigitsCNN
from slimkit.quant.flows import quant_layers


def _batches(n=4, nan=False):
    g = torch.Generator().manual_seed(0)
    out = [torch.randn(16, 1, 8, 8, generator=g) for _ in range(n)]
    if nan:
        out[2][0, 0, 0, 0] = float("nan")
    return out


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return DigitsCNN().eval()


@pytest.mark.parametrize("config", [
    sk.QuantConfig.w8a8(), sk.QuantConfig.w4a8(), sk.QuantConfig.weight_only(4),
    sk.QuantConfig.weight_only(4, 32).skip("features.0.0"), sk.QuantConfig.dynamic(),
    sk.QuantConfig.nonuniform("kmeans", 3), sk.QuantConfig.w8a8(sk.Entropy()),
], ids=lambda c: c.name)
def test_state_dict_round_trip_gives_identical_outputs(cnn, config):
    q = sk.quantize(cnn, config, calib=_batches(), progress=False)
    buf = io.BytesIO()
    torch.save(q.state_dict(), buf)
    # a fresh structure from the same flow (other calibration data), then the saved state
    fresh = sk.quantize(DigitsCNN().eval(), config, calib=_batches(2), progress=False)
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.randn(8, 1, 8, 8)
    assert torch.equal(q(x), fresh(x))


def test_quantize_leaves_the_input_model_untouched(cnn):
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    sk.quantize(cnn, sk.QuantConfig.w8a8(), calib=_batches(), progress=False)
    assert all(torch.equal(before[k], v) for k, v in cnn.state_dict().items())


def test_packed_weights_really_shrink_the_state(cnn):
    from slimkit.graph.modules import state_bytes

    q4 = sk.quantize(cnn, sk.QuantConfig.weight_only(4))
    q8 = sk.quantize(cnn, sk.QuantConfig.weight_only(8))
    for layer in quant_layers(q4):
        n = layer.packed.shape.numel()
        assert layer.packed.packed.numel() == (n + 1) // 2  # two 4-bit codes per byte
    assert state_bytes(q4) < 0.56 * state_bytes(q8)


def test_dynamic_and_weight_only_need_no_data(cnn):
    q = sk.quantize(cnn, sk.QuantConfig.dynamic())
    kinds = {e.module_type: e.spec is not None for e in sk.record_of(q).plan.entries}
    assert kinds == {"Conv2d": False, "Linear": True}  # dynamic() covers Linear only
    x = torch.randn(4, 1, 8, 8)
    assert sk.sqnr(cnn(x), q(x)) > 30


def test_plan_rules_last_match_wins_and_explain_themselves(cnn):
    cfg = (sk.QuantConfig.w8a8()
           .skip(types=(nn.Linear,))
           .override(sk.QuantConfig.weight_only(4).default, pattern="features.1.*"))
    plan = sk.resolve_plan(cnn, cfg)
    by_name = {e.name: e for e in plan.entries}
    assert by_name["classifier.2"].spec is None
    assert "rule 0" in by_name["classifier.2"].reason
    assert by_name["features.1.0"].spec.weight.scheme.bits == 4
    assert by_name["features.0.0"].reason == "default (w8a8)"
    text = str(plan)
    assert "classifier.2" in text and "float" in text and "sint4" in text
    assert plan.to_dict()["layers"][0]["name"] == "features.0.0"


def test_static_config_needs_calibration(cnn):
    with pytest.raises(CalibrationError, match="pass calib="):
        sk.quantize(cnn, sk.QuantConfig.w8a8())


def test_empty_calibration_is_an_error(cnn):
    with pytest.raises(CalibrationError, match="calib is empty"):
        sk.quantize(cnn, sk.QuantConfig.w8a8(), calib=[], progress=False)


def test_nan_calibration_data_is_an_error_naming_the_batch(cnn):
    with pytest.raises(CalibrationError, match="calibration batch 2 holds NaN or inf"):
        sk.quantize(cnn, sk.QuantConfig.w8a8(), calib=_batches(nan=True), progress=False)


def test_nan_inside_the_model_names_the_layer(cnn):
    with torch.no_grad():
        cnn.features[1][0].weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(CalibrationError, match="features.3.0.input"):
        sk.quantize(cnn, sk.QuantConfig.w8a8(), calib=_batches(), progress=False)


def test_rule_matching_nothing_is_an_error(cnn):
    with pytest.raises(ConfigError, match=r"rule 0 \(name 'head.\*' → skip\) matches no"):
        sk.quantize(cnn, sk.QuantConfig.weight_only(8).skip("head.*"))


def test_group_size_that_does_not_divide_names_the_layer(cnn):
    with pytest.raises(ConfigError, match="PerGroup\\(size=32\\).*'features.0.0'"):
        sk.quantize(cnn, sk.QuantConfig.weight_only(4, 32))


def test_model_without_quantizable_layers_is_an_error():
    with pytest.raises(ConfigError, match="no quantizable layer; supported types"):
        sk.quantize(nn.Sequential(nn.ReLU()), sk.QuantConfig.weight_only(8))


def test_bad_qat_option_is_an_error():
    with pytest.raises(ConfigError, match="freeze_bn_after=-1"):
        sk.QuantConfig.w8a8().with_qat(freeze_bn_after=-1)


def test_calibration_accepts_label_tuples_and_dicts(cnn):
    tuples = [(b, torch.zeros(16, dtype=torch.long)) for b in _batches()]
    a = sk.quantize(cnn, sk.QuantConfig.w8a8(), calib=tuples, progress=False)
    b = sk.quantize(cnn, sk.QuantConfig.w8a8(), calib=[{"x": t} for t in _batches()],
                    progress=False)
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(a(x), b(x))


class _Seq1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 10, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_conv1d_and_output_quantizer():
    torch.manual_seed(0)
    m = _Seq1d().eval()
    out_q = sk.ActQuant(sk.QScheme(8, symmetric=True, signed=True))
    spec = sk.LayerQuant(sk.QuantConfig.w8a8().default.weight,
                         sk.QuantConfig.w8a8().default.input, out_q)
    calib = [torch.randn(16, 4, 10) for _ in range(3)]
    q = sk.quantize(m, sk.QuantConfig(spec), calib=calib, progress=False)
    x = torch.randn(5, 4, 10)
    assert sk.sqnr(m(x), q(x)) > 30
    # the output quantizer snaps the logits to its int8 grid
    oq = q.fc.output_quantizer
    steps = q(x) / oq.scale
    assert torch.allclose(steps, steps.round(), atol=1e-4)
    assert type(q.conv).__name__ == "QuantConv1d"


class _Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
            return self.b(self.a(x) + x)
        return self.b(x)


def test_untraceable_model_still_quantizes_and_the_plan_says_what_stayed_float():
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="residual adds and pools stay float"):
        q = sk.quantize(_Untraceable().eval(), sk.QuantConfig.w8a8(),
                        calib=[torch.rand(8, 4)], progress=False)
    assert sk.record_of(q).plan.tensors == ()
    assert "note: residual adds and pools stay float" in sk.describe(q)
    assert q(torch.rand(2, 4)).shape == (2, 4)
