import pytest
import torch

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
