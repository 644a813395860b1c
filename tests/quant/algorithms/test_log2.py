"""log2 activations: codes bit-exact against a brute-force nearest-level reference; PTQ puts
every quantized activation on the level set; QAT trains through the straight-through
estimator and converts to the same function."""

import pytest
import torch
from torch import nn

import slimkit as sk
from slimkit.deploy import ExportError
from slimkit.quant import algorithms as qa
from slimkit.quant.algorithms.common import wrapped_layers
from slimkit.quant.algorithms.log2 import levels, log2_dequantize, log2_fake_quantize
from slimkit.quant.algorithms.log2 import log2_quantize as lq
from tests.quant.algorithms.nets import SmallCNN, image_batches


def _reference(x: torch.Tensor, scale: float, bits: int, signed: bool) -> torch.Tensor:
    """Nearest level in the log domain by brute force over the level set (0 below half the
    smallest level, clipped at scale)."""
    n = levels(bits, signed)
    lv = torch.tensor([scale * 2.0 ** -k for k in range(n)], dtype=torch.float64)
    a = x.double().abs().clamp(min=1e-300)
    k = (torch.log2(a).unsqueeze(-1) - torch.log2(lv)).abs().argmin(-1)
    out = lv[k] * (torch.sign(x.double()) if signed else 1.0)
    out[x.double().abs() < lv[-1] / 2] = 0.0
    return out.float()


@pytest.mark.parametrize("bits,signed", [(3, False), (4, True), (5, False), (8, True)])
def test_codes_match_a_brute_force_reference(bits, signed):
    x = torch.randn(4096, generator=torch.Generator().manual_seed(bits)) * 3
    x = x if signed else x.abs()
    codes = lq(x, 4.0, bits, signed)
    assert torch.equal(log2_dequantize(codes, 4.0), _reference(x, 4.0, bits, signed))
    assert int(codes.abs().max()) <= levels(bits, signed)


def test_straight_through_inside_the_range_zero_outside():
    x = torch.tensor([-5.0, -1.0, 0.3, 2.0, 9.0], requires_grad=True)
    log2_fake_quantize(x, 4.0, 4, True).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_ptq_puts_every_activation_on_the_level_set():
    torch.manual_seed(0)
    calib = image_batches(2)
    q = sk.quantize(SmallCNN().eval(), sk.QuantConfig.w4a8(), calib, progress=False)
    q = qa.apply(q, qa.Log2Activations(bits=4), calib)
    rep = sk.record_of(q).report
    assert len(rep.applied) == 4 and sk.record_of(q).steps[-1].kind == "log2_activations"
    seen = []
    for layer in wrapped_layers(q):
        layer.input_quantizer.register_forward_hook(lambda m, a, o: seen.append((m, o)))
    q(calib[0])
    for m, out in seen:
        s, signed = float(m.scale), bool(m.signed)
        assert s == 2.0 ** round(torch.log2(torch.tensor(s)).item())  # a power of two
        assert torch.equal(out, log2_dequantize(lq(out, s, 4, signed), s))
    with pytest.raises(ExportError, match="Log2Quantizer"):
        sk.export(q, calib[0], "/tmp/never-written.onnx")


def test_qat_with_log2_activations_trains_and_converts_to_the_same_function():
    torch.manual_seed(0)
    model = SmallCNN()
    calib = image_batches(3)
    target = torch.randint(0, 5, (16,))
    qat = sk.prepare_qat(model, sk.QuantConfig.w4a8(), calib[0])
    qat = qa.apply(qat, qa.Log2Activations(bits=4), calib)
    assert qat.training
    opt = torch.optim.Adam(qat.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(qat(calib[0]), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    qat.eval()
    q = sk.convert(qat)
    assert torch.allclose(q(calib[1]), qat(calib[1]), atol=1e-5)
