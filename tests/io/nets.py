"""Factories the artifact tests save models from; a fresh process imports them by name."""

import torch
from torch import nn

from slimkit.models import DigitsCNN
from tests.deploy.conftest import TinyResNet
from tests.pruning.nets import Transformer


def _bn_stats(m: nn.Module, shape) -> nn.Module:
    torch.manual_seed(0)
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(*shape))
    return m.eval()


def digits(width: float = 1.0) -> nn.Module:
    torch.manual_seed(0)
    return _bn_stats(DigitsCNN(width=width), (16, 1, 8, 8))


def resnet() -> nn.Module:
    torch.manual_seed(0)
    return _bn_stats(TinyResNet(), (8, 3, 32, 32))


def transformer() -> nn.Module:
    torch.manual_seed(0)
    return Transformer().eval()


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 8)).eval()


INPUTS = {"digits": (1, 8, 8), "resnet": (3, 32, 32), "transformer": (6, 16)}
