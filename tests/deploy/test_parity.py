"""Parity on real data: slimkit's simulated DigitsCNN vs ONNX Runtime's integer execution."""

import slimkit as sk
from slimkit.deploy import check_parity


def test_digits_int8_parity(trained_cnn, digits, tmp_path):
    train, test = digits
    q = sk.quantize(trained_cnn, sk.QuantConfig.w8a8(), calib=train, progress=False)
    p = sk.export(q, next(iter(test))[0][:4], tmp_path / "digits.onnx")
    par = check_parity(q, p, test)
    assert par.top1_agreement >= 0.995
    assert par.within_one_step >= 0.99
    assert par.cosine > 0.9999
