import pytest
import torch

import slimkit as sk
from tests.deploy.conftest import TinyResNet, _with_bn_stats


@pytest.fixture(scope="session")
def tiny():
    torch.manual_seed(0)
    return _with_bn_stats(TinyResNet(), (8, 3, 32, 32))


@pytest.fixture(scope="session")
def calib():
    g = torch.Generator().manual_seed(1)
    return [torch.randn(4, 3, 32, 32, generator=g) for _ in range(4)]


@pytest.fixture(scope="session")
def tiny_int8(tiny, calib):
    return sk.quantize(tiny, sk.QuantConfig.w8a8(), calib=calib, progress=False)


@pytest.fixture(scope="session")
def tiny_files(tiny, tiny_int8, calib, tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    x = calib[0]
    return {"fp32": sk.export(tiny, x, d / "fp32.onnx"),
            "int8": sk.export(tiny_int8, x, d / "int8.onnx"), "dir": d}
