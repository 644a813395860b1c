"""Integer kernels vs their plain-PyTorch references and vs slimkit's simulation."""

import pytest
import torch

import slimkit as sk
from slimkit.deploy.kernels import (
    Int4WeightOnlyLinear,
    Int8DynamicLinear,
    Int8WeightOnlyLinear,
    to_kernels,
)
from tests.deploy.nets import MLP


def _codes(n, k, lo=-128, hi=127, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi + 1, (n, k), generator=g), torch.rand(n, generator=g) * 0.01 + 1e-3


@pytest.mark.parametrize("m,k,n", [(1, 64, 48), (7, 33, 5), (64, 1024, 1024), (3, 128, 17)])
def test_int8_dynamic_accumulation_is_bit_exact(m, k, n):
    codes, scale = _codes(n, k)
    lin = Int8DynamicLinear(codes, scale, torch.randn(n))
    x = torch.randn(m, k)
    q, _ = lin.quantize_input(x)
    assert torch.equal(lin.accumulate(q), lin.reference_accumulate(q))
    assert sk.sqnr(lin.reference(x), lin(x)) > 100


@pytest.mark.parametrize("m,k,n", [(1, 64, 48), (9, 256, 96)])
def test_int8_weight_only_matches_reference(m, k, n):
    codes, scale = _codes(n, k)
    lin = Int8WeightOnlyLinear(codes, scale, None)
    x = torch.randn(2, m, k)  # leading dims are flattened and restored
    y = lin(x)
    assert y.shape == (2, m, n)
    assert sk.sqnr(lin.reference(x), y) > 60


@pytest.mark.parametrize("group", [32, 128])
def test_int4_weight_only_matches_reference(group):
    n, k = 48, 256
    codes, _ = _codes(n, k, -8, 7)
    scale = torch.rand(n * k // group) * 0.05 + 1e-3
    lin = Int4WeightOnlyLinear(codes, scale, group)
    x = torch.randn(5, k)
    assert sk.sqnr(lin.reference(x), lin(x)) > 60



@pytest.mark.parametrize("config,kernel", [
    (sk.QuantConfig.dynamic(), Int8DynamicLinear),
    (sk.QuantConfig.weight_only(8), Int8WeightOnlyLinear),
    (sk.QuantConfig.weight_only(4, group_size=32), Int4WeightOnlyLinear),
])
def test_kernels_run_what_slimkit_simulates(config, kernel):
    torch.manual_seed(0)
    model = MLP(128, 256, 64).eval()
    q = sk.quantize(model, config)
    fast = to_kernels(q)
    names = sk.record_of(fast).steps[-1].config["layers"]
    assert names == ["fc1", "fc2"] and isinstance(fast.fc1, kernel)
    x = torch.randn(3, 10, 128)
    with torch.no_grad():
        assert sk.sqnr(q(x), fast(x)) > 50  # same integers; only float rounding differs
        assert sk.sqnr(model(x), fast(x)) > 18


def test_static_activation_layers_are_left_alone():
    q = sk.quantize(MLP(128, 256, 64).eval(), sk.QuantConfig.w8a8(), calib=[torch.randn(4, 128)],
                    progress=False)
    with pytest.raises(sk.ConfigError, match="no converted Linear layer"):
        to_kernels(q)  # nothing to swap: said, not a silent copy
