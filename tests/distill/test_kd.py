import math

import pytest
import torch
from torch import nn

import slimkit as sk
from slimkit.distill import Distiller, kd_loss
from slimkit.errors import ConfigError
from slimkit.models import DigitsCNN


def _reference(s, t, y, T, a):
    """Hinton KD written out element by element."""
    n, c = len(s), len(s[0])
    total_kl, total_ce = 0.0, 0.0
    for i in range(n):
        ps = [math.exp(s[i][j] / T) for j in range(c)]
        pt = [math.exp(t[i][j] / T) for j in range(c)]
        zs, zt = sum(ps), sum(pt)
        total_kl += sum(pt[j] / zt * math.log((pt[j] / zt) / (ps[j] / zs)) for j in range(c))
        e = [math.exp(s[i][j]) for j in range(c)]
        total_ce += -math.log(e[y[i]] / sum(e))
    return (1 - a) * total_ce / n + a * T * T * total_kl / n


@pytest.mark.parametrize("T,a", [(1.0, 0.5), (4.0, 0.9), (2.0, 1.0), (3.0, 0.0)])
def test_kd_loss_matches_hand_computed_reference(T, a):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 7, generator=g, dtype=torch.float64), torch.randn(5, 7, generator=g,
                                                                           dtype=torch.float64)
    y = torch.randint(0, 7, (5,), generator=g)
    got = kd_loss(s, t, y, T, a).item()
    assert got == pytest.approx(_reference(s.tolist(), t.tolist(), y.tolist(), T, a), rel=1e-9)


def test_gradient_reaches_the_student_only():
    torch.manual_seed(0)
    teacher, student = DigitsCNN(), DigitsCNN(width=0.5)
    d = Distiller(teacher, features=[("features.1", "features.1")])
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    d.trainable(student, x)
    d(student, x, y).backward()
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)
    assert all(p.grad is not None for p in d.adapters.parameters())  # 32 → 64 channel adapter
    assert all(p.grad is None and not p.requires_grad for p in d.teacher.parameters())
    assert not d.teacher.training
    assert not any(p is q for p in d.parameters() for q in d.teacher.parameters())
    assert all(p.grad is None for p in teacher.parameters())  # the original is untouched


def test_bad_distillation_input():
    with pytest.raises(ConfigError, match=r"student logits \(4, 10\) and teacher logits \(4, 5\)"):
        kd_loss(torch.randn(4, 10), torch.randn(4, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ConfigError, match="feature layer 'features.9' does not exist"):
        Distiller(DigitsCNN(), features=[("features.9", "features.1")])
    d = Distiller(DigitsCNN(), features=[("features.1", "nope")])
    with pytest.raises(ConfigError, match="feature layer 'nope' does not exist"):
        d(DigitsCNN(), torch.randn(2, 1, 8, 8), torch.zeros(2, dtype=torch.long))


def test_sk_distill_is_reachable_from_the_package():
    assert sk.distill.kd_loss is kd_loss
    assert isinstance(Distiller(nn.Linear(2, 2)).adapters, nn.ModuleDict)


def test_teacher_defaults_to_the_uncompressed_model():
    torch.manual_seed(0)
    fp32 = DigitsCNN().eval()
    x = torch.randn(16, 1, 8, 8)
    qat = sk.prepare_qat(fp32, sk.QuantConfig.w4a8(), x)
    assert not any("original" in k for k in qat.state_dict())  # a reference, not state
    d = Distiller(temperature=1.0, alpha=1.0)
    loss = d(qat, x, None)
    with torch.no_grad():
        assert torch.equal(d.teacher(x), fp32(x))
    assert loss.item() > 0
    with pytest.raises(ConfigError, match="Distiller has no teacher"):
        Distiller()(DigitsCNN(), x, torch.zeros(16, dtype=torch.long))


def test_convert_keeps_the_reference_without_copying_the_original():
    fp32 = DigitsCNN().eval()
    qat = sk.prepare_qat(fp32, sk.QuantConfig.w8a8(), torch.randn(4, 1, 8, 8))
    q = sk.convert(qat)
    assert sk.record_of(qat).original is fp32 and sk.record_of(q).original is fp32
