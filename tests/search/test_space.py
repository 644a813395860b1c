import random

import pytest
import torch

from slimkit.errors import ConfigError
from slimkit.search import (
    Choice,
    Constraint,
    SearchConfig,
    SearchError,
    get_space,
    model_costs,
    pareto_front,
)
from slimkit.search.objectives import hypervolume
from slimkit.search.space import Costs, violation
from tests.search.helpers import tiny_space


@pytest.mark.parametrize("name", ["digits", "mobilenetv2", "resnet"])
def test_encoding_round_trips_and_candidates_build(name):
    space = get_space(name)
    rng = random.Random(0)
    for i in range(20):
        enc = space.random(rng)
        arch = space.decode(enc)
        assert space.encode(arch) == enc
        assert space.from_params({g.name: i for g, i in zip(space.genes, enc, strict=True)}) == enc
        if i == 0:  # building is the slow part: one candidate per space
            model = space.build_model(enc).eval()
            with torch.no_grad():
                assert model(space.example(2)).shape == (2, 10)
    assert space.size == pytest.approx(
        __import__("math").prod(len(g.options) for g in space.genes))


def test_decode_and_encode_name_the_bad_gene():
    space = tiny_space()
    with pytest.raises(ConfigError, match="gene 'width' index 9"):
        space.decode((9, 0, 0))
    with pytest.raises(ConfigError, match=r"gene 'width'=5 is not allowed; choose one of"):
        space.encode({"width": 5, "depth": 1, "act": "relu"})
    with pytest.raises(ConfigError, match=r"missing genes \['act'\]"):
        space.encode({"width": 4, "depth": 1})
    with pytest.raises(ConfigError, match="duplicates"):
        Choice("k", (3, 3))


def test_space_difference_names_the_gene():
    a, b = tiny_space(), tiny_space(widths=(4, 8, 16, 64))
    assert a.difference(a.to_dict()) is None
    assert "gene 'width'" in a.difference(b.to_dict())
    assert "64" in a.difference(b.to_dict())


def test_costs_and_constraints():
    space = get_space("digits")
    enc = space.encode({"s0.depth": 1, "s0.width": 32, "s0.kernel": 3, "s1.depth": 1,
                        "s1.width": 64, "s1.kernel": 3, "s2.depth": 1, "s2.width": 128,
                        "s2.kernel": 3})
    model = space.build_model(enc)  # the DigitsCNN layout
    c = model_costs(model, space.example())
    from slimkit.graph.deps import DependencyGraph
    from slimkit.models import DigitsCNN

    ref = DigitsCNN()
    assert c.params == sum(p.numel() for p in ref.parameters())
    assert c.macs == DependencyGraph.build(ref, torch.randn(1, 1, 8, 8)).macs()
    assert violation(c, [Constraint("params", c.params + 1)]) is None
    assert violation(c, [Constraint("params", c.params - 1)]) == Constraint("params",
                                                                             c.params - 1)
    with pytest.raises(SearchError, match="latency needs a latency table"):
        violation(Costs(1, 1, None), [Constraint("latency_ms", 1.0)])
    with pytest.raises(ConfigError, match="Constraint.cost='flops': Input should be 'params'"):
        Constraint("flops", 1)


def test_config_from_dict_and_errors():
    cfg = SearchConfig.from_dict({"strategy": "evolution", "n_trials": 5,
                                  "constraints": ["latency_ms <= 2.5", {"cost": "params",
                                                                       "max": 1e5}],
                                  "evolution": {"population": 8, "sample": 3},
                                  "proxy": {"epochs": 2, "data_fraction": 0.5}})
    assert cfg.constraints == (Constraint("latency_ms", 2.5), Constraint("params", 1e5))
    assert cfg.evolution.population == 8 and cfg.proxy.data_fraction == 0.5
    assert SearchConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match=r"search.stratgy='tpe': unknown field"):
        SearchConfig.from_dict({"stratgy": "tpe"})
    with pytest.raises(ConfigError, match="strategy='bayes': Input should be 'random'"):
        SearchConfig(strategy="bayes")
    with pytest.raises(ConfigError, match=r"search.proxy.data_fraction=2: Input should be less"):
        SearchConfig.from_dict({"proxy": {"data_fraction": 2}})
    with pytest.raises(ConfigError, match="nsga2' needs ≥ 2 objectives"):
        SearchConfig(strategy="nsga2")
    assert SearchConfig(objectives=("loss", "latency_ms")).directions == ["minimize", "minimize"]
    for bad in (("latency_ms", "accuracy"), ("accuracy", "loss"), ("params",)):
        with pytest.raises(ConfigError, match="first objective is the one metric"):
            SearchConfig(objectives=bad)
    with pytest.raises(ConfigError, match="constraints\\[0\\]"):
        SearchConfig.from_dict({"constraints": ["latency < 3"]})
    with pytest.raises(ConfigError, match="space='nope' is not allowed"):
        get_space("nope")


def test_pareto_front_and_hypervolume_exact():
    dirs = ["maximize", "minimize"]
    pts = [[90, 3.0], [95, 5.0], [80, 1.0], [85, 4.0]]  # (accuracy, latency)
    assert pareto_front(pts, dirs) == [0, 1, 2]
    # reference (70, 6): union of rectangles, by hand: 80→[1,6]: 10·5; 90 over 80 on [3,6]:
    # 10·3; 95 over 90 on [5,6]: 5·1  → 50 + 30 + 5
    assert hypervolume(pts, dirs, [70, 6]) == pytest.approx(85.0)
    assert hypervolume([[60, 1.0]], dirs, [70, 6]) == 0.0
    assert hypervolume([[1, 1, 1]], ["minimize"] * 3, [2, 2, 2]) == pytest.approx(1.0)
