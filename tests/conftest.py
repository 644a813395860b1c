import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def digits():
    from slimkit.data import load_digits

    return load_digits(seed=0)


@pytest.fixture(scope="session")
def trained_cnn(tmp_path_factory):
    """The demo's fp32 DigitsCNN (same recipe, trained once per session)."""
    from slimkit.demo import trained_model

    return trained_model(tmp_path_factory.mktemp("cache"), progress=False)
