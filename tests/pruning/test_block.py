"""Block-structured pruning: zeros in whole tiles (what BSR kernels skip), exact amounts,
layers that do not tile kept dense and named, BSR runs it exactly, the artifact restores it."""

import pytest
import torch
from torch import nn

import slimkit as sk
from slimkit.sparse import SparseLinear


class Net(nn.Sequential):  # a class sk.load can rebuild (nn.Sequential needs its layers)
    def __init__(self):
        super().__init__(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 96), nn.ReLU(),
                         nn.Linear(96, 10))


def _net():
    torch.manual_seed(0)
    return Net()


def _tiles(w: torch.Tensor, b: tuple[int, int]) -> torch.Tensor:
    o, i = w.shape
    return (w.reshape(o // b[0], b[0], i // b[1], b[1]) != 0).any(3).any(1)


@pytest.mark.parametrize("block", [(16, 16), (8, 32)])
def test_zeros_come_in_whole_tiles_at_the_asked_ratio(block):
    model, x = _net(), torch.randn(4, 64)
    small = sk.prune(model, sk.PruneConfig(granularity="block", ratio=0.5, block=block), x)
    rep = sk.record_of(small).report
    for name in ("0", "2"):  # the 10-output classifier does not tile by 8 or 16 rows
        w = small.get_submodule(name).weight
        tiles = _tiles(w, block)
        assert int(tiles.numel() - tiles.sum()) == round(0.5 * tiles.numel())
        nz = (w != 0).reshape(w.shape[0] // block[0], block[0], w.shape[1] // block[1],
                              block[1])
        assert bool((nz.any(3).any(1) == nz.all(3).all(1)).all())  # a tile: all or nothing
    assert torch.equal(small.get_submodule("4").weight, model.get_submodule("4").weight)
    assert any("4.weight kept dense" in n for n in rep.notes)


def test_tiles_kept_are_the_largest_by_magnitude():
    lin = nn.Linear(32, 32, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.01)
        lin.weight[:16, 16:] = 1.0  # one tile of 16×16 clearly the largest
    small = sk.prune(lin, sk.PruneConfig(granularity="block", ratio=0.75), torch.randn(1, 32))
    assert torch.count_nonzero(small.weight) == 256
    assert bool((small.weight[:16, 16:] == 1.0).all())


def test_bsr_runs_the_block_pruned_layer_exactly_and_the_artifact_restores_it(tmp_path):
    model, x = _net(), torch.randn(4, 64)
    small = sk.prune(model, sk.PruneConfig(granularity="block", ratio=0.75), x)
    dense = small.get_submodule("2")
    bsr = SparseLinear(dense, "bsr", blocksize=16)
    h = torch.randn(8, 128)
    torch.testing.assert_close(bsr(h), dense(h), rtol=1e-5, atol=1e-6)
    sk.save(small, tmp_path / "a")
    back = sk.load(tmp_path / "a")
    assert torch.equal(back(x), small(x))


def test_bad_block_configs_are_named():
    with pytest.raises(sk.ConfigError, match=r"PruneConfig.block=\(0, 16\)"):
        sk.PruneConfig(granularity="block", ratio=0.5, block=(0, 16))
    with pytest.raises(sk.ConfigError, match="granularity='block' takes ratio"):
        sk.PruneConfig(granularity="block", target_macs=0.5)
