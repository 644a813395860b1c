"""Bad input gets an error that names what is wrong, and leaves the model untouched."""

import pytest
import torch
from torch import nn

import slimkit as sk
from slimkit.errors import ConfigError
from slimkit.graph.deps import DependencyError, DependencyGraph
from tests.pruning.nets import build


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        return self.a(x) if x.sum() > 0 else self.b(x)  # Python branch on a tensor value


class Rolls(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3)
        self.c = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        return self.c(torch.roll(self.b(self.a(x)), 1, dims=1))  # roll: no rule


def test_untraceable_model_is_a_clear_error():
    with pytest.raises(DependencyError, match="torch.export cannot trace DataDependent"):
        sk.prune(DataDependent(), sk.PruneConfig(ratio=0.5), torch.randn(2, 8))


def test_unknown_op_is_named_with_its_module_or_frozen_on_request():
    x = torch.randn(1, 3, 12, 12)
    with pytest.raises(DependencyError, match=r"aten\.roll.*module '\(top level\)'"):
        sk.prune(Rolls(), sk.PruneConfig(ratio=0.5), x)
    small = sk.prune(Rolls(), sk.PruneConfig(ratio=0.5, unknown_ops="freeze"), x)
    rep = sk.record_of(small).report
    assert small.a.out_channels == 4  # far from the roll: cut
    assert small.b.out_channels == 8 and small.c.in_channels == 8  # through the roll: kept
    assert any("roll" in n for n in rep.notes)


@pytest.mark.parametrize("kw", [dict(ratio=1.0), dict(ratio=1.5), dict(ratio=-0.1),
                                dict(target_macs=1.0), dict(), dict(ratio=0.5, target_macs=0.5),
                                dict(ratio=0.5, granularity="blocks"),
                                dict(ratio=0.5, importance="hessian"),
                                dict(ratio=0.5, round_to=0)])
def test_bad_config_fields(kw):
    with pytest.raises(ConfigError):
        sk.PruneConfig(**kw)


def test_rule_matching_nothing():
    model, x = build("chain")
    with pytest.raises(ConfigError, match="'classifier' matches no module"):
        sk.prune(model, sk.PruneConfig(ratio=0.5, rules=(sk.PruneRule("classifier",
                                                                       skip=True),)), x)


def test_hard_coded_view_fails_loudly_and_leaves_the_model_whole():
    class Hard(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.fc = nn.Linear(8, 16), nn.Linear(16, 2)

        def forward(self, x):
            return self.fc(self.a(x).view(3, 16))  # a constant the graph cannot update

    m = Hard()
    with pytest.raises(sk.PruneError, match="fails at forward"):
        sk.prune(m, sk.PruneConfig(ratio=0.5), torch.randn(3, 8))
    assert m.a.out_features == 16 and m.a.weight.shape == (16, 8)


def test_graph_build_reports_frozen_op_and_time():
    g = DependencyGraph.build(Rolls(), torch.randn(1, 3, 12, 12), unknown="freeze")
    assert g.frozen_ops and g.build_seconds > 0


class Patchify(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj, self.dim = nn.Conv2d(3, 8, 1), 8

    def forward(self, x):  # the shape comes from an attribute, like torchvision's ViT
        return self.proj(x).reshape(x.shape[0], self.dim, -1).transpose(1, 2)


class PatchNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch = Patchify()
        self.mlp = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 8))
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.mlp(self.patch(x)).mean(1))


def test_module_with_attribute_shapes_is_kept_whole_and_the_rest_pruned():
    x = torch.randn(2, 3, 4, 4)
    # most channels end up kept whole: below half the target, an error naming the module
    with pytest.raises(sk.PruneError, match=r"reached 17% of its target.*'mlp.0'"):
        sk.prune(PatchNet(), sk.PruneConfig(ratio=0.5), x)
    small = sk.prune(PatchNet(), sk.PruneConfig(ratio=0.5, allow_partial=True), x)
    rep = sk.record_of(small).report
    assert rep.reached == pytest.approx(1 / 6)
    assert small.patch.proj.out_channels == 8 and small.patch.dim == 8  # kept whole
    # the bad reshape only fails one layer later (mlp.0), so that layer's groups are kept too;
    # the rest is still cut, and the result is checked op by op against the plan
    assert small.mlp[2].out_features == 4 and small.head.in_features == 4
    assert any("kept whole" in n for n in rep.notes)
    assert small(x).shape == (2, 4)


def test_a_cut_that_reaches_little_of_its_target_says_why_or_is_accepted_on_request():
    model, x = build("chain")
    skip_all = tuple(sk.PruneRule(p, skip=True) for p in ("body.*", "fc"))
    with pytest.raises(sk.PruneError, match=r"reached 0% of its target \(ratio 0.5.*kept whole "
                                            r"by a rule.*allow_partial=True"):
        sk.prune(model, sk.PruneConfig(ratio=0.5, rules=skip_all), x)
    small = sk.prune(model, sk.PruneConfig(ratio=0.5, rules=skip_all, allow_partial=True),
                          x)
    rep = sk.record_of(small).report
    assert rep.reached == 0 and "reached 0% of the target" in str(rep)
    assert sum(p.numel() for p in small.parameters()) == sum(
        p.numel() for p in model.parameters())


def test_a_head_target_on_a_model_without_heads_is_an_error():
    model, x = build("chain")
    with pytest.raises(sk.PruneError, match="granularity head.*no group of this granularity"):
        sk.prune(model, sk.PruneConfig(granularity="head", ratio=0.5), x)


def test_a_full_cut_reaches_its_target():
    model, x = build("chain")
    _ = sk.prune(model, sk.PruneConfig(target_macs=0.4), x)
    rep = sk.record_of(_).report
    assert rep.reached >= 0.99 and rep.target == "target_macs 0.4"
