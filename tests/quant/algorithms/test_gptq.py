"""GPTQ: identity Hessian = round-to-nearest exactly; never worse than RTN on its objective;
bad input (too few samples, NaN, layers it cannot handle) is reported, not swallowed."""

import tempfile
from pathlib import Path

import pytest
import torch
from torch import nn

import slimkit as sk
from slimkit.errors import CalibrationError
from slimkit.quant import algorithms as qa
from slimkit.quant.algorithms.gptq import gptq_codes
from slimkit.quant.granularity import PerChannel, PerGroup, PerTensor
from slimkit.quant.observers import MinMax, make_observer
from slimkit.quant.qscheme import QScheme, quantize
from tests.quant.algorithms.nets import OutlierMLP, SmallCNN, image_batches, outlier_batches

SCHEMES = [QScheme(4, granularity=PerChannel(0)), QScheme(8, granularity=PerTensor()),
           QScheme(3, symmetric=False, signed=False, granularity=PerGroup(16))]


@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.describe())
@pytest.mark.parametrize("act_order", [False, True])
def test_identity_hessian_is_round_to_nearest_exactly(scheme, act_order):
    w = torch.randn(24, 64, generator=torch.Generator().manual_seed(0))
    obs = make_observer(MinMax(), scheme)
    obs(w)
    s, z = obs.qparams()
    codes = gptq_codes(w, torch.eye(64), scheme, s, z, damp=0.01, block_size=24,
                       act_order=act_order)
    assert torch.equal(codes, quantize(w, s, z, scheme).to(torch.int32))


def test_gptq_beats_round_to_nearest_on_correlated_inputs():
    torch.manual_seed(0)
    model = OutlierMLP().eval()
    calib = outlier_batches(4)
    cfg = sk.QuantConfig.weight_only(3, 16)
    q = qa.apply(model, qa.GPTQ(act_order=True), calib, qconfig=cfg)
    rep = sk.record_of(q).report
    for r in rep.applied:
        assert r.metrics["error_gptq"] < r.metrics["error_rtn"]
    x = outlier_batches(1, seed=7)[0]
    rtn = sk.quantize(model, cfg)
    assert sk.sqnr(model(x), q(x)) > sk.sqnr(model(x), rtn(x)) + 1.0


def test_gptq_conv_model_exports_and_matches_ort():
    torch.manual_seed(0)
    model = OutlierMLP().eval()
    calib = outlier_batches(4)
    q = qa.apply(model, qa.GPTQ(), calib, qconfig=sk.QuantConfig.weight_only(4, 16))
    x = outlier_batches(1, seed=3)[0]
    with tempfile.TemporaryDirectory() as d:
        path = sk.export(q, x, Path(d) / "gptq.onnx")
        par = sk.check_parity(q, path, x)
    assert par.cosine > 0.99999 and par.top1_agreement == 1.0  # MatMulNBits runs the same codes


def test_too_few_samples_for_the_hessian_says_how_many():
    model = OutlierMLP().eval()
    calib = [torch.randn(2, 4, 32)]  # 2 samples × 4 tokens = 8 rows for a 32×32 Hessian
    with pytest.raises(CalibrationError, match=r"gave 8 rows from 2 samples .* at least 8 samp"):
        qa.apply(model, qa.GPTQ(), calib, qconfig=sk.QuantConfig.weight_only(4))


def test_layers_gptq_cannot_handle_are_listed():
    torch.manual_seed(0)
    model = SmallCNN().eval()
    calib = image_batches(2)
    gptq = qa.GPTQ(min_rows_per_column=0.1)  # fc: 32 images for 256 columns
    _ = qa.apply(model, gptq, calib, qconfig=sk.QuantConfig.w8a8())
    rep = sk.record_of(_).report
    assert {r.name for r in rep.applied} == {"c1", "c2", "fc"}
    assert "grouped conv" in dict(rep.skipped)["dw"]
    _ = qa.apply(model, gptq, calib, qconfig=sk.QuantConfig.nonuniform("kmeans", 3))
    rep = sk.record_of(_).report
    assert all("non-uniform" in why for _, why in rep.skipped) and rep.applied == ()


def test_non_finite_activations_name_the_layer():
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 4)).eval()
    with torch.no_grad():
        model[0].weight.fill_(3e38)  # overflows to inf inside the model
    calib = [torch.ones(16, 8)]
    q = sk.quantize(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 4)).eval(),
                    sk.QuantConfig.weight_only(4))
    q[0].layer.bias.data.fill_(float("inf"))
    with pytest.raises(CalibrationError, match=r"non-finite .* input of '1'"):
        qa.apply(q, qa.GPTQ(min_rows_per_column=0), calib, reference=model)


def test_one_hessian_alive_at_a_time(monkeypatch):
    import gc
    import weakref

    from slimkit.quant.algorithms import hessian

    alive, peak = weakref.WeakSet(), [0]
    init = hessian.Gram.__init__

    def tracked(self, cols):
        gc.collect()
        init(self, cols)
        alive.add(self)
        peak[0] = max(peak[0], len(alive))

    monkeypatch.setattr(hessian.Gram, "__init__", tracked)
    model = torch.nn.Sequential(*[torch.nn.Linear(16, 16) for _ in range(4)]).eval()
    qa.apply(model, qa.GPTQ(), [torch.randn(64, 16)], qconfig=sk.QuantConfig.weight_only(4))
    assert peak[0] == 1
