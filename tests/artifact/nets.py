"""Factories the artifact tests save models from; a fresh process imports them by name."""

import torch
from torch import nn

from slimkit.models import DigitsCNN
from tests.deploy.conftest import TinyResNet
from tests.deploy.conftest import _with_bn_stats as _bn_stats
from tests.pruning.nets import Transformer


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
