"""Per-node profiles (bench/profile.py) name the model's layers, in both runtimes."""

import numpy as np
import pytest

from slimkit.bench.profile import by_layer, by_op, profile_nodes

CONVS = {"stem.0", "a1.0", "a2.0", "b1.0", "b2.0", "down.0"}


@pytest.mark.parametrize("runtime", ["ort", "openvino"])
@pytest.mark.parametrize("which", ["fp32", "int8"])
def test_profiles_name_every_conv_and_bracket_the_rest(tiny_files, runtime, which):
    pytest.importorskip("openvino") if runtime == "openvino" else None
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    nodes = profile_nodes(tiny_files[which], runtime, x, runs=3)
    layers = dict(by_layer(nodes))
    assert set(layers) >= CONVS  # every conv found, by its module name
    assert all(n in CONVS | {"fc"} or n.startswith("[") for n in layers)
    assert all(v >= 0 for v in layers.values())
    assert sum(layers.values()) == pytest.approx(sum(n.ms for n in nodes))
    assert sum(r[2] for r in by_op(nodes)) == len(nodes)


def test_an_unknown_runtime_is_named(tiny_files):
    with pytest.raises(Exception, match="profile runtime='tvm' is not allowed"):
        profile_nodes(tiny_files["fp32"], "tvm", np.zeros((1, 3, 32, 32), np.float32))
