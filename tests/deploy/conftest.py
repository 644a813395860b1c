import pytest
import torch
from torch import nn


class TinyResNet(nn.Module):
    """Stem + two basic residual blocks (one with a downsample) + head: every export pattern
    the CNN benchmarks rely on (residual adds, max-pool, global pool, flatten, Gemm)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU(), nn.MaxPool2d(2))
        self.a1 = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.a2 = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8))
        self.b1 = nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                nn.ReLU())
        self.b2 = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16))
        self.down = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(self.a2(self.a1(x)) + x)
        x = torch.relu(self.b2(self.b1(x)) + self.down(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _with_bn_stats(m: nn.Module, shape) -> nn.Module:
    torch.manual_seed(0)
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(*shape))
    return m.eval()


@pytest.fixture
def tiny_resnet():
    torch.manual_seed(0)
    return _with_bn_stats(TinyResNet(), (8, 3, 32, 32))


@pytest.fixture
def calib32():
    g = torch.Generator().manual_seed(1)
    return [torch.randn(4, 3, 32, 32, generator=g) for _ in range(4)]
