"""The mixed-precision latency cost: scheme → kernel precision, and the network estimate."""

import pytest

import slimkit as sk
from slimkit.quant.mixed_precision import default_schemes
from slimkit.quant.mixed_precision.latency_cost import LatencyCost, precision_of


def test_schemes_map_to_the_kernels_the_table_times():
    schemes = default_schemes()
    assert precision_of(None) == "fp32"
    assert precision_of(schemes["int8"]) == "int8"
    with pytest.raises(sk.ConfigError, match="no kernel in the per-layer latency table"):
        precision_of(schemes["w4"])


def test_a_fitted_rest_is_added_by_the_share_of_int8_layers():
    # a transformer's attention, softmax and norms are outside the layer table: once measured
    # all-float (3 ms) and all-int8 (5 ms: the Q/DQ around each layer) the estimate adds them
    cost = LatencyCost(specs={"a": None, "b": None, "c": None, "d": None}, tables={},
                       rest_ms=(3.0, 5.0))
    assert cost.estimate(10.0, 0) == pytest.approx(13.0)
    assert cost.estimate(10.0, 4) == pytest.approx(15.0)
    assert cost.estimate(10.0, 2) == pytest.approx(14.0)
    with pytest.raises(sk.ConfigError, match="layer 'e' is not in the latency table"):
        cost("e", None)
