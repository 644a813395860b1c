"""QAT: Conv-BN folding, freezing schedules, and convert() agreeing with the trained model."""

import copy

import pytest
import torch
from torch import nn

import slimkit as sk
from slimkit.quant import LayerQuant
from slimkit.quant.modules import QuantConvBn


def _conv_bn(conv_type=nn.Conv2d, bn_type=nn.BatchNorm2d, bias=False):
    torch.manual_seed(0)
    conv, bn = conv_type(3, 8, 3, padding=1, bias=bias), bn_type(8)
    with torch.no_grad():  # non-trivial statistics and affine params
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return conv, bn


@pytest.mark.parametrize("dims,bias", [(2, False), (2, True), (1, True)])
@pytest.mark.parametrize("training", [True, False])
def test_folded_conv_bn_matches_float_when_quantization_is_off(dims, bias, training):
    types = {2: (nn.Conv2d, nn.BatchNorm2d), 1: (nn.Conv1d, nn.BatchNorm1d)}[dims]
    conv, bn = _conv_bn(*types, bias=bias)
    ref = nn.Sequential(copy.deepcopy(conv), copy.deepcopy(bn)).train(training)
    folded = QuantConvBn(conv, bn, LayerQuant(weight=None)).train(training)
    x = torch.randn(4, 3, *([10] * dims))
    assert torch.allclose(folded(x), ref(x), atol=1e-5)
    # in training mode both updated the running statistics the same way
    assert torch.allclose(folded.bn.running_mean, ref[1].running_mean, atol=1e-6)


def test_bn_freezes_after_n_steps():
    conv, bn = _conv_bn()
    m = QuantConvBn(conv, bn, LayerQuant(weight=None), freeze_bn_after=2).train()
    x = torch.randn(4, 3, 6, 6)
    m(x)
    m(x)
    frozen_mean = m.bn.running_mean.clone()
    assert m.bn_frozen
    m(x * 3 + 1)
    assert torch.equal(m.bn.running_mean, frozen_mean)  # running stats no longer move
    eval_out = m.eval()(x)
    assert torch.allclose(m.train()(x), eval_out, atol=1e-6)  # and training uses them


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 16, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def test_observers_freeze_after_n_steps():
    torch.manual_seed(0)
    cfg = sk.QuantConfig.w8a8().with_qat(freeze_observers_after=3)
    m = sk.prepare_qat(_Net(), cfg, torch.randn(8, 1, 4, 4))
    q = m.fc.input_quantizer
    for _ in range(3):
        m(torch.randn(8, 1, 4, 4))
    scale = q.scale.clone()
    m(torch.randn(8, 1, 4, 4) * 10)
    assert torch.equal(q.scale, scale)


@pytest.mark.parametrize("lsq", [False, True])
def test_convert_reproduces_the_trained_qat_model(lsq):
    torch.manual_seed(0)
    cfg = sk.QuantConfig.w4a8().with_qat(lsq=lsq, freeze_bn_after=5)
    m = sk.prepare_qat(_Net(), cfg, torch.randn(8, 1, 4, 4))
    assert isinstance(m.conv, QuantConvBn) and isinstance(m.bn, nn.Identity)
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    for _ in range(10):
        loss = m(torch.randn(8, 1, 4, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    if lsq:
        assert m.fc.input_quantizer.learnable and m.conv.weight_quantizer.learnable
    x = torch.randn(16, 1, 4, 4)
    m.eval()
    q = sk.convert(m)
    assert not any(isinstance(mod, QuantConvBn) for mod in q.modules())
    # same math, re-associated: allow float noise, far below one int8 activation step
    assert torch.allclose(q(x), m(x), atol=1e-4)


def test_qat_swaps_only_plain_minmax_observers_to_ema():
    from slimkit.quant.observers import MovingAverageObserver, PercentileObserver

    x = torch.randn(8, 1, 4, 4)
    ema = sk.prepare_qat(_Net(), sk.QuantConfig.w8a8(), x)
    assert isinstance(ema.fc.input_quantizer.observer, MovingAverageObserver)
    pct = sk.prepare_qat(_Net(), sk.QuantConfig.w8a8(sk.Percentile(99.9)), x)
    assert isinstance(pct.fc.input_quantizer.observer, PercentileObserver)
