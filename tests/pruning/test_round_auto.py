"""round_to="auto": kept channel counts at this machine's latency steps (pruning/rounding.py),
round_to=int as before."""

import pytest
import torch
from torch import nn

import slimkit as sk
from slimkit.graph.deps import DependencyGraph
from slimkit.pipeline.stage_prune import PruneStage, to_config
from slimkit.pruning.rounding import Allowed, LatencyRounding, Multiple, group_kinds


def test_multiple_rounds_like_before_and_allowed_to_the_nearest_listed_count():
    assert Multiple(8).round(0, 64, 37) == 40 and Multiple(8).round(0, 6, 5) == 5
    assert Multiple(8).up(0, 64, 40) == 48 and Multiple(8).up(0, 64, 60) == 60
    a = Allowed({0: (16, 32, 64)})
    assert [a.round(0, 64, k) for k in (1, 23, 24, 25, 50, 64)] == [16, 16, 32, 32, 64, 64]
    assert a.up(0, 64, 32) == 64 and a.up(0, 64, 64) == 64
    assert a.round(1, 10, 7) == 7  # a group without a list keeps any count


def test_round_to_auto_parses_once_and_bad_values_are_named():
    cfg = sk.PruneConfig(ratio=0.5, round_to="auto")
    assert cfg.round_to == LatencyRounding()
    assert sk.PruneConfig(ratio=0.5, round_to={"runtime": "ort"}).round_to.runtime == "ort"
    for bad in (0, "fast", 2.5, True):
        with pytest.raises(sk.ConfigError, match="PruneConfig.round_to="):
            sk.PruneConfig(ratio=0.5, round_to=bad)
    with pytest.raises(sk.ConfigError, match="LatencyRounding.runtime='tvm' is not allowed"):
        LatencyRounding(runtime="tvm")
    with pytest.raises(sk.ConfigError, match="LatencyRounding.batch=0"):
        LatencyRounding(batch=0)


def test_group_kinds_read_the_layers_a_group_feeds(tiny):
    graph = DependencyGraph.build(tiny, (torch.randn(1, 3, 32, 32),))
    kinds = {g.owners[0]: dict(group_kinds(graph, g)) for g in graph.groups() if g.owners}
    assert kinds["a1.0"] == {("conv", 3): 2}  # a1 out, a2 in
    assert kinds["b1.0"] == {("conv", 3): 2}
    res = next(k for o, k in kinds.items() if ("linear", 1) in k)  # the residual stream …
    assert res[("conv", 1)] == 1  # … through the downsample and into fc


class Chain(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 48, 3, padding=1), nn.Conv2d(48, 48, 3, padding=1)
        self.c3, self.fc = nn.Conv2d(48, 32, 3, padding=1), nn.Linear(32, 4)

    def forward(self, x):
        x = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(torch.relu(self.c3(x)).mean((2, 3)))


def test_auto_keeps_only_measured_counts_and_meets_the_macs_target(tmp_path):
    torch.manual_seed(0)
    how = LatencyRounding(runtime="ort", precision="fp32", cache_dir=str(tmp_path))
    x = torch.randn(1, 3, 16, 16)
    cfg = sk.PruneConfig(target_macs=0.4, round_to=how, rules=(sk.PruneRule("fc", skip=True),))
    small = sk.prune(Chain().eval(), cfg, x)
    rep = sk.record_of(small).report
    assert rep.macs_after <= 0.6 * rep.macs_before + 1
    assert rep.notes[0].startswith("round_to=auto") and " ort " in rep.notes[0]
    allowed = {n.split("(")[1].split("…")[0]: {int(c) for c in
                                                 n.split("keeps one of ")[1].split(", ")}
               for n in rep.notes if "keeps one of" in n}
    assert set(allowed) == {"c1", "c2", "c3"}
    for name, counts in allowed.items():  # every group kept one of its measured counts
        assert getattr(small, name).out_channels in counts
    assert small(torch.randn(2, 3, 16, 16)).shape == (2, 4)


def test_the_recipe_stage_takes_auto_and_rounds_for_int8_when_quantized_later():
    stage = PruneStage(target_macs=0.5, round_to="auto")
    assert to_config(stage).round_to == LatencyRounding(precision="fp32")  # no recipe: float
    assert to_config(PruneStage(target_macs=0.5, round_to=8)).round_to == 8
