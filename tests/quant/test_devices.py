"""Tensors are created where the model lives: its dtype (a float64 model end to end) and its
device (the meta device, for every function that does not need to read values)."""

import pytest
import torch

import slimkit as sk
from slimkit.models import DigitsCNN
from slimkit.pruning import unstructured as U
from slimkit.quant.granularity import PerChannel, PerTensor
from slimkit.quant.observers import MSE, MinMax, MovingAverage, Percentile, make_observer
from slimkit.quant.packing import pack_bits, unpack_bits
from slimkit.quant.qscheme import QScheme, fake_quantize
from slimkit.train.lowprec import round_bf16

CONFIGS = {"w8a8": sk.QuantConfig.w8a8(), "dynamic": sk.QuantConfig.dynamic(),
           "w4": sk.QuantConfig.weight_only(4), "kmeans": sk.QuantConfig.nonuniform("kmeans"),
           "pow2": sk.QuantConfig.nonuniform("pow2")}


@pytest.fixture(scope="module")
def f64():
    torch.manual_seed(0)
    return DigitsCNN().double().eval(), torch.randn(16, 1, 8, 8, dtype=torch.float64)


@pytest.mark.parametrize("name", CONFIGS)
def test_a_float64_model_quantizes_and_runs_in_float64(f64, name):
    model, x = f64
    q = sk.quantize(model, CONFIGS[name], calib=[x], progress=False)
    y = q(x)
    assert y.dtype == torch.float64
    assert sk.sqnr(model(x), y) > 8  # pow2 at 4 bits on random weights is the weakest


def test_a_float64_model_trains_qat_and_prunes(f64):
    model, x = f64
    qat = sk.prepare_qat(model, sk.QuantConfig.w8a8(), x).train()
    qat(x).sum().backward()
    assert sk.convert(qat)(x).dtype == torch.float64
    for cfg in (sk.PruneConfig(ratio=0.5), sk.PruneConfig(ratio=0.5, importance="random"),
                sk.PruneConfig(granularity="unstructured", ratio=0.5)):
        small = sk.prune(model, cfg, x[:1])
        assert small(x).dtype == torch.float64


@pytest.mark.parametrize("cfg", [MinMax(), MovingAverage(), Percentile(), MSE()],
                         ids=lambda c: type(c).__name__)
@pytest.mark.parametrize("gran", [PerTensor(), PerChannel(0)], ids=["tensor", "channel"])
def test_observers_stay_on_the_input_device(cfg, gran):
    x = torch.randn(4, 8, device="meta")
    obs = make_observer(cfg, QScheme(8, granularity=gran))
    obs(x)
    obs(x)
    s, z = obs.qparams()
    assert s.device.type == z.device.type == "meta"
    assert fake_quantize(x, s, z, QScheme(8, granularity=gran)).device.type == "meta"


def test_masks_scores_rounding_and_packing_stay_on_the_input_device():
    w = torch.randn(8, 16, device="meta")
    for scope in ("uniform", "global"):
        assert U.magnitude_masks({"w": w.abs()}, {"w": 0.5}, scope)["w"].device.type == "meta"
    assert U.nm_mask(w.abs(), 2, 4).device.type == "meta"
    assert U.weight_scores(w, "random", None, 0).device.type == "meta"
    assert round_bf16(w).device.type == "meta"
    codes = torch.zeros(20, dtype=torch.int32, device="meta")
    for bits in (3, 4, 8):
        packed = pack_bits(codes, bits, -(2 ** (bits - 1)))
        assert packed.device.type == "meta"
        assert unpack_bits(packed, bits, 0, 20).device.type == "meta"
