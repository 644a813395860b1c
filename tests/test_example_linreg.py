"""The seed articles' first worked example runs as it is: linear regression on real data,
fp32 vs int8 vs int4 weights."""

import math

import pytest

from slimkit.examples.linear_regression import least_squares, run


def test_int8_is_as_good_as_fp32_and_int4_close():
    rows = {r.scheme: r for r in run()}
    assert list(rows) == ["fp32", "int8 weights", "int4 weights"]
    assert 2000 < rows["fp32"].test_mse < 4500  # the diabetes target's scale (units²)
    assert abs(rows["int8 weights"].vs_fp32) < 0.01
    assert abs(rows["int4 weights"].vs_fp32) < 0.05
    assert rows["int8 weights"].weight_sqnr_db > 40 > rows["int4 weights"].weight_sqnr_db > 15
    assert rows["int4 weights"].weight_bytes < rows["int8 weights"].weight_bytes < \
        rows["fp32"].weight_bytes
    assert math.isinf(rows["fp32"].weight_sqnr_db)


def test_the_fit_is_the_least_squares_solution():
    import torch

    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    y = x @ torch.tensor([[1.5], [-2.0], [0.5]]) + 3.0
    lin = least_squares(x, y)
    assert lin.weight.detach().flatten().tolist() == pytest.approx([1.5, -2.0, 0.5], abs=1e-4)
    assert float(lin.bias) == pytest.approx(3.0, abs=1e-4)
