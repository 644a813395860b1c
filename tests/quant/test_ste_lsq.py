import math

import torch

from slimkit.quant import PerChannel, PerTensor, QScheme, WeightQuant
from slimkit.quant.qscheme import fake_quantize
from slimkit.quant.quantizers import WeightFakeQuant


def test_ste_gradient_is_identity_inside_and_zero_outside():
    s = QScheme(8, symmetric=True, signed=True, granularity=PerTensor())
    scale, zp = torch.tensor([0.1]), torch.tensor([0], dtype=torch.int32)
    # representable range: [-12.8, 12.7]
    x = torch.tensor([-20.0, -12.9, -5.03, 0.0, 3.14159, 12.6, 12.8, 50.0], requires_grad=True)
    fake_quantize(x, scale, zp, s).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_lsq_scale_gradient_matches_hand_derived_reference():
    torch.manual_seed(0)
    w = torch.randn(4, 50) * 0.5
    spec = WeightQuant(QScheme(4, granularity=PerChannel(0)))
    fq = WeightFakeQuant(spec, w.shape)
    fq.make_learnable(w)
    with torch.no_grad():
        fq.scale.mul_(0.7)  # some weights clip: both branches of the gradient are exercised
    g_out = torch.randn_like(w)
    (fq(w) * g_out).sum().backward()

    # LSQ (Esser et al. 2020): ∂ŵ/∂s = round(w/s) − w/s inside, qmin or qmax when clipped,
    # times the gradient scale 1/sqrt(N·Qp), N = elements per scale.
    s = fq.scale.detach().reshape(-1, 1)
    v = w / s
    qmin, qmax = spec.scheme.qmin, spec.scheme.qmax
    d = torch.where(v <= qmin - 0.5, float(qmin),
                    torch.where(v >= qmax + 0.5, float(qmax), torch.round(v) - v))
    ref = (g_out * d).sum(1) / math.sqrt(w.shape[1] * qmax)
    assert torch.allclose(fq.scale.grad, ref, rtol=1e-5, atol=1e-6)


def test_learnable_scale_starts_at_observer_value():
    w = torch.randn(3, 20)
    fq = WeightFakeQuant(WeightQuant(QScheme(8, granularity=PerChannel(0))), w.shape)
    before = fq(w)
    fq.make_learnable(w)
    assert torch.allclose(fq(w), before)
