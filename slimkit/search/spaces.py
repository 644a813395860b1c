"""The shipped search spaces and the one registry of space factories.

- digits: three conv stages on 8×8 digits (depth, width, kernel per stage) — the layout of
  DigitsCNN, 13,824 candidates; the one-shot supernet (supernet.py) covers it.
- mobilenetv2: MobileNetV2-like inverted-residual stages (depth, expansion, kernel per stage,
  one width multiplier), 3×32×32 inputs.
- resnet: ResNet-like stages (depth, width, basic or bottleneck block per stage), 3×32×32.

A user space is a few lines (see space.py); `get_space("pkg.module:function", **options)`
loads one by import path, so a recipe or a worker process can name it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
from torch import nn

from slimkit.errors import ConfigError
from slimkit.models.mobilenetv2 import _make_divisible
from slimkit.models.resnet import BasicBlock, Bottleneck
from slimkit.search.space import Choice, Space

# ---- digits ------------------------------------------------------------------------------------
DIGITS_WIDTHS = ((8, 16, 24, 32), (16, 32, 48, 64), (32, 64, 96, 128))
DEPTHS, KERNELS = (1, 2, 3), (3, 5)


def _cbr(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class DigitsNet(nn.Module):
    """(N, 1, 8, 8) → (N, classes): stage 1 at 8×8, stage 2 at 8×8 then pool, stage 3 at 4×4
    then pool, linear on the 2×2 map (DigitsCNN is depths (1, 1, 1), widths (32, 64, 128))."""

    def __init__(self, depths, widths, kernels, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for stage, (d, c, k) in enumerate(zip(depths, widths, kernels, strict=True)):
            for _ in range(d):
                layers.append(_cbr(c_in, c, k))
                c_in = c
            if stage > 0:
                layers.append(nn.MaxPool2d(2))  # 8×8 → 4×4 → 2×2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.1),
                                        nn.Linear(c_in * 4, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def digits_arch(arch: dict) -> tuple[list[int], list[int], list[int]]:
    """(depths, widths, kernels) of a digits-space arch dict."""
    return ([arch[f"s{i}.depth"] for i in range(3)], [arch[f"s{i}.width"] for i in range(3)],
            [arch[f"s{i}.kernel"] for i in range(3)])


def digits_space(num_classes: int = 10) -> Space:
    genes = []
    for i in range(3):
        genes += [Choice(f"s{i}.depth", DEPTHS), Choice(f"s{i}.width", DIGITS_WIDTHS[i]),
                  Choice(f"s{i}.kernel", KERNELS)]
    return Space("digits", tuple(genes), lambda a: DigitsNet(*digits_arch(a), num_classes),
                 (1, 8, 8))


# ---- MobileNetV2-like --------------------------------------------------------------------------
class MBConv(nn.Module):
    """Inverted residual: 1×1 expand → k×k depthwise (stride) → 1×1 project; residual when
    the shape is kept."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int, k: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.use_res = stride == 1 and c_in == c_out
        layers = [] if expand == 1 else [_cbr(c_in, hidden, 1)]
        layers += [_cbr(hidden, hidden, k, stride, groups=hidden),
                   nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


MB_STAGES = ((16, 2, 1), (24, 3, 2), (32, 3, 2), (64, 3, 2), (96, 2, 1))  # (c, max depth, stride)


class MobileNetLike(nn.Module):
    def __init__(self, arch: dict, num_classes: int, in_ch: int) -> None:
        super().__init__()
        m = arch["width_mult"]
        c_in = _make_divisible(16 * m)
        feats: list[nn.Module] = [_cbr(in_ch, c_in, 3)]
        for i, (c, _, s) in enumerate(MB_STAGES):
            c_out = _make_divisible(c * m)
            for j in range(arch[f"s{i}.depth"]):
                feats.append(MBConv(c_in, c_out, s if j == 0 else 1, arch[f"s{i}.expand"],
                                    arch[f"s{i}.kernel"]))
                c_in = c_out
        feats.append(_cbr(c_in, _make_divisible(320 * m), 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Linear(_make_divisible(320 * m), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) → (N, classes)
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


def mobilenet_space(num_classes: int = 10, input_shape=(3, 32, 32)) -> Space:
    genes = [Choice("width_mult", (0.5, 0.75, 1.0))]
    for i, (_, n, _) in enumerate(MB_STAGES):
        genes += [Choice(f"s{i}.depth", tuple(range(1, n + 1))), Choice(f"s{i}.expand", (3, 6)),
                  Choice(f"s{i}.kernel", (3, 5))]
    return Space("mobilenetv2", tuple(genes),
                 lambda a: MobileNetLike(a, num_classes, input_shape[0]), tuple(input_shape))


# ---- ResNet-like -------------------------------------------------------------------------------
RES_WIDTHS = (64, 128, 256, 512)


class ResNetLike(nn.Module):
    """3×3 stem (small inputs), four stages of basic or bottleneck blocks, stride 2 from
    stage 2 on; per-stage width = RES_WIDTHS[i] × width."""

    def __init__(self, arch: dict, num_classes: int, in_ch: int) -> None:
        super().__init__()
        c0 = int(32 * arch["s0.width"] / 0.5)
        self.stem = _cbr(in_ch, c0, 3)
        c_in, stages = c0, []
        for i, base in enumerate(RES_WIDTHS):
            block = BasicBlock if arch[f"s{i}.block"] == "basic" else Bottleneck
            c = max(8, int(base * arch[f"s{i}.width"]) // (1 if block is BasicBlock else 4))
            blocks = []
            for j in range(arch[f"s{i}.depth"]):
                blocks.append(block(c_in, c, 2 if (j == 0 and i > 0) else 1))
                c_in = c * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) → (N, classes)
        x = nn.functional.adaptive_avg_pool2d(self.stages(self.stem(x)), 1)
        return self.fc(torch.flatten(x, 1))


def resnet_space(num_classes: int = 10, input_shape=(3, 32, 32)) -> Space:
    genes = []
    for i in range(4):
        genes += [Choice(f"s{i}.depth", (1, 2, 3)), Choice(f"s{i}.width", (0.25, 0.5, 1.0)),
                  Choice(f"s{i}.block", ("basic", "bottleneck"), ordered=False)]
    return Space("resnet", tuple(genes), lambda a: ResNetLike(a, num_classes, input_shape[0]),
                 tuple(input_shape))


# ---- the registry -------------------------------------------------------------------------------
SPACES: dict[str, Callable[..., Space]] = {
    "digits": digits_space, "mobilenetv2": mobilenet_space, "resnet": resnet_space,
}


def get_space(name: str, **options) -> Space:
    """A registered space by name, or 'pkg.module:function' returning a Space."""
    if name in SPACES:
        factory = SPACES[name]
    elif ":" in name:
        mod, _, fn = name.partition(":")
        try:
            factory = getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"space={name!r}: cannot import {fn} from {mod} ({e})") from e
    else:
        raise ConfigError(f"space={name!r} is not allowed; choose one of {sorted(SPACES)} or "
                          "'pkg.module:function'")
    try:
        space = factory(**options)
    except TypeError as e:
        raise ConfigError(f"space={name!r} does not take options {sorted(options)}: {e}") from e
    if not isinstance(space, Space):
        raise ConfigError(f"space={name!r} returned {type(space).__name__}, not a Space")
    return space


def build_candidate(space: str, arch: dict, options: dict | None = None) -> nn.Module:
    """The model of one architecture of a registered space — what an artifact of a searched
    model names as its source, so `sk.load` can rebuild it."""
    s = get_space(space, **(options or {}))
    return s.build_model(s.encode(arch))
