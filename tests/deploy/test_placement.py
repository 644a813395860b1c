"""QDQ placement (deploy/qdq_place.py): the runtimes run max-pooling on integers, and the file
still computes what slimkit's simulation computes."""

import numpy as np
import onnx
import pytest

import slimkit as sk
from slimkit.bench.profile import profile_nodes
from slimkit.deploy.qdq_place import PLACEMENTS, place


def _producer(g):
    return {o: n for n in g.node for o in n.output}


def test_max_pool_gets_qdq_on_both_sides_with_one_scale(tiny_files):
    g = onnx.load(str(tiny_files["int8"])).graph
    prod = _producer(g)
    pools = [n for n in g.node if n.op_type == "MaxPool"]
    assert len(pools) == 1
    dq_in = prod[pools[0].input[0]]
    q_out = next(n for n in g.node if pools[0].output[0] in n.input)
    assert dq_in.op_type == "DequantizeLinear" and q_out.op_type == "QuantizeLinear"
    assert prod[dq_in.input[0]].input[1:] == q_out.input[1:]  # the same scale / zero point


def test_placement_is_idempotent_and_names_a_bad_runtime(tiny_files):
    m = onnx.load(str(tiny_files["int8"]))
    assert place(m, "openvino") == {"quantize_pool_inputs": 0}  # already integer on its input
    with pytest.raises(sk.ConfigError, match="export runtime='tvm' is not allowed"):
        place(m, "tvm")
    assert set(PLACEMENTS) == {"any", "ort", "openvino"}


@pytest.mark.parametrize("runtime", ["ort", "openvino"])
def test_the_placed_file_keeps_parity_with_the_simulation(tiny_int8, tiny_files, calib,
                                                          runtime):
    pytest.importorskip("openvino") if runtime == "openvino" else None
    par = sk.check_parity(tiny_int8, tiny_files["int8"], calib, runtime=runtime)
    assert par.within_one_step >= 0.99 and par.top1_agreement == 1.0


@pytest.mark.parametrize("runtime", ["ort", "openvino"])
def test_the_pool_runs_on_integers(tiny_files, runtime):
    pytest.importorskip("openvino") if runtime == "openvino" else None
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    pools = [n for n in profile_nodes(tiny_files["int8"], runtime, x, runs=2)
             if "MaxPool" in n.op]
    assert pools
    if runtime == "ort":  # ORT's uint8 kernel is NhwcMaxPool; a float pool is "MaxPool"
        assert {n.op for n in pools} == {"NhwcMaxPool"}
    else:  # OpenVINO's kernel names carry the precision it ran in
        assert all("I8" in n.kernel.upper() or "U8" in n.kernel.upper() for n in pools)
