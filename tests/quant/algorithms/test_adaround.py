"""AdaRound: never worse than round-to-nearest on the layer reconstruction loss it minimizes
(checked independently of its own report), and better on a small conv net."""

import torch

import slimkit as sk
from slimkit.quant import algorithms as qa
from slimkit.quant.algorithms.adaround import AdaRound, optimize_layer, recon_loss
from slimkit.quant.algorithms.capture import run_to
from slimkit.quant.algorithms.common import (
    dequant_codes,
    float_reference,
    weight_input,
    wrapped_layers,
)
from tests.quant.algorithms.nets import SmallCNN, image_batches, randomize_bn

FAST = AdaRound(iterations=60, batch_size=8, max_samples=32)


def _first_layer_loss(q, ref, calib):
    layer = q.get_submodule("c1")
    xs = torch.cat([weight_input(layer, run_to(q, "c1", b, output=False)) for b in calib])
    ys = torch.cat([run_to(ref, "c1", b, output=True) for b in calib])
    with torch.no_grad():
        return float(recon_loss(layer.op(xs, layer.weight, layer.bias), ys, 1))


def test_adaround_lowers_reconstruction_loss_below_round_to_nearest():
    torch.manual_seed(0)
    model = randomize_bn(SmallCNN())
    calib = image_batches(3)
    cfg = sk.QuantConfig.w4a8()
    rtn = sk.quantize(model, cfg, calib, progress=False)
    q = qa.apply(rtn, FAST, calib)
    rep = sk.record_of(q).report
    assert {r.name for r in rep.applied} == {"c1", "dw", "c2", "fc"}
    for r in rep.applied:
        assert r.metrics["loss_adaround"] <= r.metrics["loss_rtn"]
    assert sum(r.metrics["loss_adaround"] < 0.95 * r.metrics["loss_rtn"] for r in rep.applied) >= 2
    ref = float_reference(model)  # the first layer sees the same inputs in both models
    assert _first_layer_loss(q, ref, calib) <= _first_layer_loss(rtn, ref, calib)
    assert all(layer.packed is not None for layer in wrapped_layers(q))  # still packed codes


def test_a_worse_learned_rounding_falls_back_to_round_to_nearest():
    torch.manual_seed(0)
    model = randomize_bn(SmallCNN())
    calib = image_batches(2)
    q = sk.quantize(model, sk.QuantConfig.w4a8(), calib, progress=False)
    layer, ref = q.get_submodule("c2"), float_reference(model)
    x = torch.cat([weight_input(layer, run_to(q, "c2", b, output=False)) for b in calib])
    y = torch.cat([run_to(ref, "c2", b, output=True) for b in calib])
    wild = AdaRound(iterations=3, lr=50.0, reg_weight=0.0)  # huge steps scramble V
    with torch.enable_grad():
        codes, l_rtn, l_kept = optimize_layer(layer, ref.c2.weight, x, y, wild)
    assert torch.equal(codes, layer.packed.codes()) and l_kept == l_rtn
    w = dequant_codes(layer, codes)
    assert w.shape == layer.packed.shape
