"""Low-precision training on a CPU without the arithmetic units for it is said loudly, with
what to use instead (issue: fp16 autocast measured 17.5-37× slower than fp32, silently)."""

import warnings
from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from slimkit.errors import ConfigError
from slimkit.target import PRESETS, detect
from slimkit.train import TrainConfig, Trainer
from slimkit.train.precision import PrecisionWarning, slow_precision

AVX2, AMX = PRESETS["x86-avx2"], PRESETS["x86-amx"]
SAPPHIRE = replace(AMX, features=AMX.features | {"avx512_fp16"})


def test_fp16_without_fp16_units_names_bf16_where_the_cpu_has_it_and_fp32_elsewhere():
    amx = slow_precision("fp16", "cpu", AMX)
    assert "no fp16 arithmetic (AVX512-FP16)" in amx and "use precision='bf16'" in amx
    assert "AMX-BF16" in amx
    avx2 = slow_precision("fp16", "cpu", AVX2)
    assert "use precision='fp32'" in avx2 and "'bf16'" not in avx2


def test_bf16_without_bf16_units_names_fp32():
    assert "use precision='fp32'" in slow_precision("bf16", "cpu", AVX2)


@pytest.mark.parametrize(("precision", "cpu"), [("fp32", AVX2), ("bf16", AMX),
                                                  ("fp16", SAPPHIRE)])
def test_a_precision_the_cpu_runs_is_not_warned_about(precision, cpu):
    assert slow_precision(precision, "cpu", cpu) is None


def test_a_gpu_device_is_not_checked():
    assert slow_precision("fp16", "cuda", AVX2) is None


def test_an_unknown_precision_is_refused_by_name():
    with pytest.raises(ConfigError, match="precision 'int4'"):
        AVX2.float_units("int4")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_the_trainer_warns_exactly_where_this_cpu_lacks_the_units(precision):
    data = TensorDataset(torch.randn(32, 5), torch.randint(0, 3, (32,)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer(nn.Linear(5, 3), TrainConfig(epochs=1, precision=precision, progress=False),
                data).close()
    warned = [w for w in caught if issubclass(w.category, PrecisionWarning)]
    assert bool(warned) == (not detect().float_units(precision))
    assert all(w.filename == __file__ for w in warned)  # points at the caller's line
