"""Structured pruning on one tiny model per coupling pattern: runs, keeps output shapes, really
shrinks, reloads, and cutting channels that are already zero changes nothing."""

import pytest
import torch

import slimkit as sk
from slimkit.graph.deps import DependencyGraph
from tests.pruning.nets import NETS, build

PATTERNS = sorted(NETS)


def _params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", PATTERNS)
def test_prune_shrinks_keeps_shapes_and_reloads(name, tmp_path):
    model, x = build(name)
    gran = "head" if name == "transformer" else "channel"
    small = sk.prune(model, sk.PruneConfig(granularity=gran, ratio=0.5), x)
    report = sk.record_of(small).report
    with torch.no_grad():
        assert small(x).shape == model(x).shape
    assert _params(small) < _params(model)
    assert report.params_after == _params(small) and report.params_before == _params(model)
    g = DependencyGraph.build(small, x)
    assert g.macs() == report.macs_after < report.macs_before
    sk.save(small, tmp_path / "small")
    fresh, _ = build(name)
    again = sk.load(tmp_path / "small", model=fresh)
    with torch.no_grad():
        torch.testing.assert_close(again(x), small(x), rtol=0, atol=0)
    assert _params(model) == _params(build(name)[0])  # the caller's model was not touched


def test_transformer_prunes_heads_and_mlp_neurons():
    model, x = build("transformer")
    heads = sk.prune(model, sk.PruneConfig(granularity="head", ratio=0.5), x)
    assert heads.block.attn.num_heads == 2 and heads.block.attn.head_dim == 8
    assert heads.block.attn.qkv.out_features == 3 * 16 and heads.block.attn.proj.in_features == 16
    both = sk.prune(heads, sk.PruneConfig(granularity="neuron", ratio=0.5), x)
    assert both.block.mlp[0].out_features == 64 and both.block.attn.num_heads == 2
    # the residual stream (proj → LNs → every block output → head) is one neuron group too
    assert both.block.ln1.normalized_shape == (16,) and both.head.in_features == 16
    assert both.block.attn.qkv.in_features == 16 and both.block.mlp[2].out_features == 16


def _zero_channels(model, group, channels):
    """Zero every coupled slice of `channels` so the net computes exactly zero there."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for m in group.members:
            if m.kind != "param":
                continue
            owner = group.graph.spaces.owner(group.graph.param_dims[m.name][m.dim], group.leaf)
            hit = torch.isin(owner, torch.tensor(channels))
            params[m.name].index_fill_(m.dim, hit.nonzero().flatten(), 0.0)


@pytest.mark.parametrize("name", ["chain", "residual", "inverted", "concat", "se", "grouped",
                                  "transformer", "text"])
def test_cutting_zero_channels_leaves_outputs_unchanged(name):
    model, x = build(name)
    gran = "head" if name == "transformer" else "channel"
    graph = DependencyGraph.build(model, x)
    from slimkit.pruning.api import _wanted

    modules = dict(model.named_modules())
    groups = [g for g in graph.groups() if _wanted(g, gran, modules)]
    assert groups
    for g in groups:
        _zero_channels(model, g, list(range(0, g.size, 2)))  # half of every group
    with torch.no_grad():
        ref = model(x)
    small = sk.prune(model, sk.PruneConfig(granularity=gran, ratio=0.5), x)
    report = sk.record_of(small).report
    assert report.groups_pruned == len(groups)
    with torch.no_grad():
        torch.testing.assert_close(small(x), ref, rtol=0, atol=1e-5)


def test_group_details_names_the_coupling_chain():
    model, x = build("residual")
    g = next(g for g in DependencyGraph.build(model, x).groups() if "stem.0" in g.owners)
    text = g.details()
    for part in ("stem.0.weight[dim 0]", "stem.1.weight[dim 0]", "blocks.0.a.0.weight[dim 1]",
                 "blocks.0.b.1.bias[dim 0]", "blocks.1.down.0.weight[dim 1]"):
        assert part in text  # the residual chain: stem, block 0's output, block 1's inputs


def test_flatten_couples_a_channel_to_its_block_of_fc_inputs():
    model, x = build("chain")
    small = sk.prune(model, sk.PruneConfig(ratio=0.5), x)
    assert small.body[2][0].out_channels == 16 and small.fc.in_features == 16 * 64


def test_grouped_and_depthwise_conv_attributes():
    model, x = build("grouped")
    small = sk.prune(model, sk.PruneConfig(ratio=0.5), x)
    g = small.g[0]
    assert g.groups == 4 and g.in_channels == 16 and g.out_channels == 16
    model, x = build("inverted")
    small = sk.prune(model, sk.PruneConfig(ratio=0.5), x)
    dw = small.blocks[0].body[1][0]
    assert dw.groups == dw.in_channels == dw.out_channels == 32


def test_concat_cuts_each_branch_and_the_dense_inputs():
    model, x = build("concat")
    small = sk.prune(model, sk.PruneConfig(ratio=0.5), x)
    assert (small.stem[0].out_channels, small.b1[0].out_channels,
            small.b2[1][0].out_channels) == (8, 4, 6)
    assert small.dense[0].in_channels == 8 + 4 + 6


def test_macs_target_and_round_to():
    model, x = build("residual")
    small = sk.prune(model, sk.PruneConfig(target_macs=0.5, round_to=4), x)
    rep = sk.record_of(small).report
    assert 1 - rep.macs_ratio >= 0.45 and rep.macs_ratio <= 0.5 + 1e-9
    for m in small.modules():
        if isinstance(m, torch.nn.Conv2d) and m.out_channels not in (10,):
            assert m.out_channels % 4 == 0
    _ = sk.prune(model, sk.PruneConfig(target_params=0.4, scope="global"), x)
    rep = sk.record_of(_).report
    assert rep.params_ratio <= 0.6 + 1e-9


def test_rules_skip_and_override():
    model, x = build("chain")
    cfg = sk.PruneConfig(ratio=0.5, rules=(sk.PruneRule("body.0.0", skip=True),
                                           sk.PruneRule("body.1.*", ratio=0.25)))
    small = sk.prune(model, cfg, x)
    assert small.body[0][0].out_channels == 16
    assert small.body[1][0].out_channels == 24
    assert small.body[2][0].out_channels == 16


def test_the_last_matching_rule_wins_on_the_structured_path():
    """General rule first, exception after: the exception wins (not the smallest ratio)."""
    model, x = build("chain")
    cfg = sk.PruneConfig(ratio=0.5, rules=(sk.PruneRule("body.*", ratio=0.25),
                                           sk.PruneRule("body.1.*", ratio=0.75)))
    small = sk.prune(model, cfg, x)
    assert small.body[0][0].out_channels == 12  # body.* : 16 × 0.75
    assert small.body[1][0].out_channels == 8  # body.1.* wins over body.*: 32 × 0.25
    cfg = sk.PruneConfig(ratio=0.5, rules=(sk.PruneRule("body.*", skip=True),
                                           sk.PruneRule("body.2.*", ratio=0.5)))
    small = sk.prune(model, cfg, x)
    assert [small.body[i][0].out_channels for i in range(3)] == [16, 32, 16]
