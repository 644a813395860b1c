import copy

import pytest
import torch
from torch import nn

from slimkit.graph.fusion import conv_bn_pairs, fuse_conv_bn


def _stats(bn):
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return bn


@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), _stats(nn.BatchNorm2d(8)), nn.ReLU()),
     (2, 3, 8, 8)),
    (lambda: nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
                           _stats(nn.BatchNorm2d(8)), nn.ReLU6()), (2, 8, 8, 8)),
    (lambda: nn.Sequential(nn.Conv1d(3, 8, 3), _stats(nn.BatchNorm1d(8)), nn.ReLU()), (2, 3, 10)),
    (lambda: nn.Sequential(nn.Linear(6, 8), _stats(nn.BatchNorm1d(8)), nn.ReLU()), (5, 6)),
])
def test_fused_equals_unfused(make, shape):
    torch.manual_seed(0)
    m = make().eval()
    fused = copy.deepcopy(m)
    assert fuse_conv_bn(fused) == [("0", "1")]
    assert isinstance(fused[1], nn.Identity)
    x = torch.randn(*shape)
    assert torch.allclose(fused(x), m(x), atol=1e-5)


class _Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

    def forward(self, x):
        return self.bn(self.conv(x)) + self.conv(x)  # conv output also used elsewhere


def test_a_conv_with_other_users_is_not_folded():
    assert conv_bn_pairs(_Shared()) == []


def test_optimize_eager_folds_and_goes_channels_last():
    from slimkit.deploy.layout import optimize_eager

    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), _stats(nn.BatchNorm2d(8)), nn.ReLU(),
                      nn.Conv2d(8, 4, 1)).eval()
    fast = optimize_eager(m)
    assert fast.model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert isinstance(fast.model[1], nn.Identity)
    x = torch.randn(2, 3, 10, 10)
    assert torch.allclose(fast(x), m(x), atol=1e-5)
