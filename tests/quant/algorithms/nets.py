"""Tiny models and data for the algorithm tests (seconds, not minutes)."""

import torch
import torch.nn.functional as F
from torch import nn


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics so folding and equalization have something to do."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) * 2 + 0.1)
            m.weight.data.copy_(torch.rand(c, generator=g) * 3 + 0.05)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)
    return model.eval()


class SmallCNN(nn.Module):
    """conv-bn-relu → depthwise-relu → conv-relu-pool → flatten → fc; (N, 3, 8, 8) → (N, 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 16, 5)

    def forward(self, x):
        x = F.relu(self.b1(self.c1(x)))
        x = F.leaky_relu(self.dw(x), 0.1)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.fc(torch.flatten(x, 1))


class Relu6Residual(nn.Module):
    """A ReLU6 pair and a residual add: CLE must skip both, and say so."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.c = nn.Conv2d(4, 4, 3, padding=1)
        self.d = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = self.b(F.relu6(self.a(x)))
        return self.d(F.relu(self.c(y) + y))


class OutlierMLP(nn.Module):
    """Two Linear layers (GELU between: not foldable) for SmoothQuant / AWQ / GPTQ."""

    def __init__(self, d_in: int = 32, hidden: int = 64, d_out: int = 16) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d_in, hidden), nn.Linear(hidden, d_out)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


def outlier_batches(n: int = 4, rows: int = 64, d: int = 32, seed: int = 0) -> list[torch.Tensor]:
    """Inputs with a few large channels (what LLM / BERT activations look like)."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) * 0.3 + torch.eye(d)  # correlated channels
    out = []
    for _ in range(n):
        x = torch.randn(rows, d, generator=g) @ mix
        x[:, 3] *= 30
        x[:, 7] *= 10
        out.append(x)
    return out


def image_batches(n: int = 3, batch: int = 16, c: int = 3, hw: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, hw, hw, generator=g) for _ in range(n)]
