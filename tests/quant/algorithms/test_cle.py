"""CLE: the float function is unchanged (1e-5 relative); ranges are balanced; every layer
that starts no pair is listed with the reason."""

import torch

from slimkit.models import DigitsCNN
from slimkit.quant import algorithms as qa
from slimkit.record import record_of
from tests.quant.algorithms.nets import Relu6Residual, SmallCNN, image_batches, randomize_bn


def _rel(a, b):
    return float((a - b).detach().abs().max() / b.detach().abs().max())


def test_cle_keeps_the_float_function_and_balances_every_pair():
    torch.manual_seed(0)
    model = randomize_bn(SmallCNN())
    x = image_batches(1, batch=32)[0]
    eq = qa.apply(model, qa.CLE())
    rep = record_of(eq).report
    assert _rel(eq(x), model(x)) < 1e-5
    pairs = {r.name for r in rep.applied}
    assert pairs == {"c1 → dw", "dw → c2", "c2 → fc"}  # through ReLU, LeakyReLU, pool+flatten
    for r in rep.applied:
        assert r.metrics["balance_after"] > 0.999 > r.metrics["balance_before"]
    assert dict(rep.skipped) == {"fc": "its output is a model output"}


def test_cle_on_digits_cnn_keeps_outputs():
    torch.manual_seed(1)
    model = randomize_bn(DigitsCNN())
    x = torch.randn(64, 1, 8, 8)
    eq = qa.apply(model, qa.CLE())
    rep = record_of(eq).report
    assert len(rep.applied) == 3
    assert _rel(eq(x), model(x)) < 1e-5


def test_cle_skips_relu6_and_residual_pairs_and_says_why():
    torch.manual_seed(0)
    model = Relu6Residual().eval()
    x = torch.randn(8, 4, 6, 6)
    eq = qa.apply(model, qa.CLE())
    rep = record_of(eq).report
    skipped = dict(rep.skipped)
    assert "relu6" in skipped["a"] and "not positively homogeneous" in skipped["a"]
    assert "2 users" in skipped["b"]  # b's output feeds c and the add
    assert "residual add" in skipped["c"]
    assert rep.applied == ()
    assert torch.equal(eq(x), model(x))
