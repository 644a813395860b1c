"""Sparse formats are exact; SparseLinear matches the dense layer; the policy decides by time."""

import pytest
import torch
from torch import nn

from slimkit.errors import ConfigError
from slimkit.sparse import SparseLinear, break_even, density, sparsify, to_sparse
from slimkit.sparse.policy import random_sparse_linear


@pytest.mark.parametrize("fmt", ["csr", "csc", "bsr"])
def test_formats_roundtrip_exactly(fmt):
    lin = random_sparse_linear(64, 32, 0.1)
    s = to_sparse(lin.weight.detach(), fmt, blocksize=16)
    assert torch.equal(s.to_dense(), lin.weight.detach())


@pytest.mark.parametrize("fmt", ["csr", "bsr"])
def test_sparse_linear_matches_dense(fmt):
    lin = random_sparse_linear(64, 32, 0.2)
    x = torch.randn(5, 7, 32)
    torch.testing.assert_close(SparseLinear(lin, fmt)(x), lin(x), rtol=1e-5, atol=1e-5)


def test_bad_sparse_input():
    with pytest.raises(ConfigError, match="2-D"):
        to_sparse(torch.zeros(2, 2, 2))
    with pytest.raises(ConfigError, match="blocksize 16"):
        to_sparse(torch.zeros(20, 16), "bsr")
    with pytest.raises(ConfigError, match="format='coo'"):
        to_sparse(torch.zeros(4, 4), "coo")


def test_policy_swaps_only_layers_it_measured_faster():
    model = nn.Sequential(random_sparse_linear(512, 512, 0.01), nn.ReLU(),
                          random_sparse_linear(512, 512, 0.4))
    x = torch.randn(1, 512)
    ref = model(x)
    model, decisions = sparsify(model, batch=1, runs=10)
    assert [d.layer for d in decisions] == ["0", "2"]
    for d in decisions:
        assert isinstance(getattr(model, d.layer), SparseLinear) == d.use_sparse
    torch.testing.assert_close(model(x), ref, rtol=1e-5, atol=1e-5)
    assert density(random_sparse_linear(100, 100, 0.3).weight) == pytest.approx(0.3, abs=0.03)


def test_break_even_returns_a_measured_density():
    best, rows = break_even(256, 256, 1, densities=(0.5, 0.01), runs=5)
    assert len(rows) == 2 and best in (None, 0.5, 0.01)
    assert all(r.dense_ms > 0 and r.sparse_ms > 0 for r in rows)
