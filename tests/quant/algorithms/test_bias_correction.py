"""Empirical bias correction: the mean output error per channel becomes ~0 at every layer."""

import io

import torch

import slimkit as sk
from slimkit.quant import algorithms as qa
from slimkit.quant.algorithms.bias_correction import mean_output_error
from slimkit.quant.algorithms.common import float_reference
from tests.quant.algorithms.nets import SmallCNN, image_batches, randomize_bn


def test_mean_output_error_per_channel_is_zero_after_correction():
    torch.manual_seed(0)
    model = randomize_bn(SmallCNN())
    calib = image_batches(3)
    q = sk.quantize(model, sk.QuantConfig.w4a8(), calib, progress=False)
    ref = float_reference(model)
    names = ["c1", "dw", "c2", "fc"]
    before = {n: mean_output_error(q, ref, n, calib).abs().max() for n in names}
    qc = qa.apply(q, qa.BiasCorrection(), calib)
    rep = sk.record_of(qc).report
    assert [r.name for r in rep.applied] == names  # forward order
    for n in names:
        after = mean_output_error(qc, ref, n, calib).abs().max()
        assert after < 1e-5 * max(1.0, float(before[n])) and before[n] > 100 * after


def test_corrected_model_round_trips_its_state_and_lists_float_layers():
    torch.manual_seed(0)
    model = randomize_bn(SmallCNN())
    calib = image_batches(2)
    cfg = sk.QuantConfig.w8a8().skip("fc")
    qc = qa.apply(model, qa.BiasCorrection(), calib, qconfig=cfg)
    rep = sk.record_of(qc).report
    assert len(rep.applied) == 3 and rep.skipped == ()  # fc is no QuantLayer: not a candidate
    assert [s.kind for s in sk.record_of(qc).steps] == ["quantize", "bias_correction"]
    buf = io.BytesIO()
    torch.save(qc.state_dict(), buf)
    fresh = qa.apply(randomize_bn(SmallCNN(), seed=3), qa.BiasCorrection(), calib, qconfig=cfg)
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    x = image_batches(1, seed=5)[0]
    assert torch.equal(fresh(x), qc(x))
