"""Tiny models, one per coupling pattern the dependency graph must get right."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cbr(cin, cout, k=3, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class Chain(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(cbr(3, 16), cbr(16, 32, stride=2), cbr(32, 32))
        self.fc = nn.Linear(32 * 8 * 8, 10)  # flatten C×H×W: a channel is 16 inputs of fc

    def forward(self, x):
        return self.fc(self.body(x).flatten(1))


class Basic(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.a, self.b = cbr(cin, cout, stride=stride), nn.Sequential(
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.down = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        skip = x if self.down is None else self.down(x)
        return F.relu(self.b(self.a(x)) + skip)


class Bottleneck(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(cbr(c, c // 2, 1), cbr(c // 2, c // 2),
                                  nn.Conv2d(c // 2, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return F.relu(self.body(x) + x)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 16)
        self.blocks = nn.Sequential(Basic(16, 16), Basic(16, 32, 2), Bottleneck(32))
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


class Inverted(nn.Module):
    def __init__(self, c, expand=4):
        super().__init__()
        h = c * expand
        self.body = nn.Sequential(cbr(c, h, 1), cbr(h, h, groups=h),
                                  nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.body(x)


class MobileNetish(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 16, stride=2)
        self.blocks = nn.Sequential(Inverted(16), Inverted(16))
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


class Concat(nn.Module):
    """DenseNet / Inception style: branches concatenated, then a conv over all of them."""

    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 16)
        self.b1, self.b2 = cbr(16, 8, 1), nn.Sequential(cbr(16, 8, 1), cbr(8, 12))
        self.dense = cbr(16 + 8 + 12, 24, 1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        s = self.stem(x)
        y = self.dense(torch.cat([s, self.b1(s), self.b2(s)], 1))  # DenseNet keeps s too
        return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))


class SE(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = cbr(3, 32)
        self.squeeze, self.excite = nn.Conv2d(32, 8, 1), nn.Conv2d(8, 32, 1)
        self.out = nn.Conv2d(32, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = self.conv(x)
        w = torch.sigmoid(self.excite(F.relu(self.squeeze(F.adaptive_avg_pool2d(y, 1)))))
        y = self.out(y * w)  # the gate multiplies channel c by w[c]: coupled
        return self.fc(y.mean((2, 3)))


class Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = cbr(3, 32)
        self.g = cbr(32, 32, groups=4)  # ResNeXt-style grouped conv
        self.b = cbr(32, 16, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.b(self.g(self.a(x))).mean((2, 3)))


class Attention(nn.Module):
    def __init__(self, dim=32, num_heads=4):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):  # (B, L, E)
        b, n, _ = x.shape
        q, k, v = self.qkv(x).chunk(3, -1)  # each (B, L, H·D)
        q, k, v = (t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
                   for t in (q, k, v))  # (B, H, L, D)
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
        return self.proj(o.reshape(b, n, self.num_heads * self.head_dim))


class EncoderBlock(nn.Module):
    def __init__(self, dim=32):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(16, 32)
        self.block = EncoderBlock()
        self.head = nn.Linear(32, 10)

    def forward(self, x):  # (B, L, 16)
        return self.head(self.block(self.proj(x)).mean(1))


class TextCNN(nn.Module):
    """Embeddings → conv over tokens → max-pool → classifier (no recurrence)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 24)
        self.conv = nn.Conv1d(24, 32, 3, padding=1)
        self.fc = nn.Linear(32, 4)

    def forward(self, tokens):  # (B, L) int64
        h = F.relu(self.conv(self.emb(tokens).transpose(1, 2)))  # (B, 32, L)
        return self.fc(h.amax(-1))


IMAGE = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
NETS = {
    "chain": (Chain, IMAGE), "residual": (Residual, IMAGE), "inverted": (MobileNetish, IMAGE),
    "concat": (Concat, IMAGE), "se": (SE, IMAGE), "grouped": (Grouped, IMAGE),
    "transformer": (Transformer, torch.randn(2, 6, 16,
                                             generator=torch.Generator().manual_seed(0))),
    "text": (TextCNN, torch.randint(0, 100, (2, 12),
                                    generator=torch.Generator().manual_seed(0))),
}


def build(name: str) -> tuple[nn.Module, torch.Tensor]:
    """The net with random BN statistics (so folding and slicing them matters), in eval."""
    cls, x = NETS[name]
    torch.manual_seed(0)
    m = cls()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(mod.weight, 0.5, 1.5)
            nn.init.uniform_(mod.bias, -0.2, 0.2)
    return m.eval(), x
