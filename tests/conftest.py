import pytest
import torch

import slimkit as sk
from tests.deploy.conftest import TinyResNet, _with_bn_stats

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def digits():
    from slimkit.data import load_digits

    return load_digits(seed=0)


@pytest.fixture(scope="session")
def trained_cnn(tmp_path_factory):
    """An fp32 DigitsCNN trained on the real digits (8 epochs: ≥ 98%; once per session)."""
    from slimkit.data.digits import digits_tensors
    from slimkit.models import DigitsCNN
    from slimkit.train import TrainConfig, Trainer

    torch.manual_seed(0)
    model = DigitsCNN()
    Trainer(model, TrainConfig(epochs=8, lr=3e-3, seed=0, progress=False),
            digits_tensors()[0]).fit()
    return model.eval()


# A tiny residual network, float and int8, exported once per session (deploy, bench and
# pruning tests read them)
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
