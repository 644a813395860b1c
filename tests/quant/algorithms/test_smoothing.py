"""SmoothQuant and AWQ: the float function is unchanged before quantization; AWQ with
exponent 0 is round-to-nearest bit for bit; both export (Mul + QDQ / MatMulNBits) and match
ONNX Runtime; layers they do not apply to are listed."""

import tempfile
from pathlib import Path

import pytest
import torch

import slimkit as sk
from slimkit.quant import algorithms as qa
from slimkit.quant.algorithms.scaled import ScaledInputLinear
from tests.quant.algorithms.nets import OutlierMLP, SmallCNN, image_batches, outlier_batches


def _rel(a, b):
    return float((a - b).detach().abs().max() / b.detach().abs().max())


@pytest.fixture
def mlp():
    torch.manual_seed(0)
    return OutlierMLP().eval()


@pytest.mark.parametrize("sq", [qa.SmoothQuant(), qa.SmoothQuant(search="global"),
                                qa.SmoothQuant(alpha=0.5)], ids=["per_layer", "global", "0.5"])
def test_smoothquant_keeps_the_float_function_and_helps_w8a8(mlp, sq):
    calib, x = outlier_batches(4), outlier_batches(1, seed=9)[0]
    cfg = sk.QuantConfig.w8a8()
    fp = qa.apply(mlp, sq, calib, qconfig=cfg)
    rep = sk.record_of(fp).report
    assert _rel(fp(x), mlp(x)) < 1e-5
    for r in rep.applied:
        assert r.metrics["error_after"] <= r.metrics["error_before"] or sq.alpha is not None
    assert isinstance(fp.fc1, ScaledInputLinear)  # the outlier layer is smoothed
    base = sk.quantize(mlp, cfg, calib, progress=False)
    smooth = sk.quantize(fp, cfg, calib, progress=False)
    fc1 = next(r for r in rep.applied if r.name == "fc1")
    assert fc1.metrics["error_after"] < 0.2 * fc1.metrics["error_before"]  # the outlier layer
    assert sk.sqnr(mlp(x), smooth(x)) > sk.sqnr(mlp(x), base(x)) + 0.5  # fc2's GELU input rules


def test_smoothquant_exports_with_its_mul_and_matches_ort(mlp):
    calib, x = outlier_batches(4), outlier_batches(1, seed=9)[0]
    fp = qa.apply(mlp, qa.SmoothQuant(), calib, qconfig=sk.QuantConfig.w8a8())
    q = sk.quantize(fp, sk.QuantConfig.w8a8(), calib, progress=False)
    with tempfile.TemporaryDirectory() as d:
        import onnx

        path = sk.export(q, x, Path(d) / "sq.onnx")
        ops = [n.op_type for n in onnx.load(path).graph.node]
        par = sk.check_parity(q, path, x)
    assert "Mul" in ops and "QuantizeLinear" in ops
    assert par.within_one_step > 0.99


def test_smoothquant_and_awq_list_layers_they_skip():
    torch.manual_seed(0)
    cnn, calib = SmallCNN().eval(), image_batches(2)
    _ = qa.apply(cnn, qa.SmoothQuant(), calib, qconfig=sk.QuantConfig.w8a8())
    rep = sk.record_of(_).report
    assert [r.name for r in rep.applied] == ["fc"]
    assert all("Linear inputs only" in why for _, why in rep.skipped)
    _ = qa.apply(cnn, qa.AWQ(), calib, qconfig=sk.QuantConfig.w8a8())
    rep = sk.record_of(_).report
    assert "activations are quantized" in dict(rep.skipped)["fc"]
    _ = qa.apply(cnn, qa.SmoothQuant(), calib, qconfig=sk.QuantConfig.weight_only(4))
    rep = sk.record_of(_).report
    assert "weight-only" in dict(rep.skipped)["fc"]


def test_awq_exponent_zero_is_round_to_nearest_bit_for_bit(mlp):
    calib, x = outlier_batches(4), outlier_batches(1, seed=9)[0]
    cfg = sk.QuantConfig.weight_only(4, 16)
    fp = qa.apply(mlp, qa.AWQ(ratios=(0.0,)), calib, qconfig=cfg)
    assert not any(isinstance(m, ScaledInputLinear) for m in fp.modules())
    assert torch.equal(sk.quantize(fp, cfg)(x), sk.quantize(mlp, cfg)(x))


def test_awq_search_beats_rtn_keeps_float_and_exports(mlp):
    calib, x = outlier_batches(4), outlier_batches(1, seed=9)[0]
    cfg = sk.QuantConfig.weight_only(4, 16)
    fp = qa.apply(mlp, qa.AWQ(), calib, qconfig=cfg)
    rep = sk.record_of(fp).report
    assert _rel(fp(x), mlp(x)) < 1e-5
    assert all(r.metrics["error_awq"] <= r.metrics["error_rtn"] for r in rep.applied)
    q = sk.quantize(fp, cfg)
    assert sk.sqnr(mlp(x), q(x)) > sk.sqnr(mlp(x), sk.quantize(mlp, cfg)(x))
    with tempfile.TemporaryDirectory() as d:
        par = sk.check_parity(q, sk.export(q, x, Path(d) / "awq.onnx"), x)
    assert par.cosine > 0.99999
