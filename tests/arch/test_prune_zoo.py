"""Structured pruning on every family of the zoo: MACs targets reached within 2%, the cut
model runs, saves and loads bit-identically, exports and runs in ONNX Runtime; and cutting
channels that are already zero leaves the output unchanged (the graph couples exactly what
the forward couples: conv-transpose, LSTM / GRU gates, heads, concat into groups, chunks)."""

import numpy as np
import pytest
import torch
from torch import nn

import slimkit as sk
from slimkit.deploy.runtimes import session
from slimkit.graph.deps import DependencyGraph
from slimkit.pruning.api import _wanted
from slimkit.pruning.surgery import cut
from slimkit.record import copy_model
from tests.arch.zoo import FAMILIES, build

FAST = ["vit", "lstm", "bigru", "unet", "hand_attention", "se_concat_grouped_mha", "gpt_block",
        "gpt2_tiny", "vit_hf_tiny"]


def _params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("target", [0.3, 0.5])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_macs_target_is_reached_and_the_model_runs(name, target):
    model, x = build(name)
    # global: one importance threshold across groups, so coarse groups (a head is 1/8 of a
    # tiny ViT's width) combine with fine ones to land near the target
    small = sk.prune(model, sk.PruneConfig(target_macs=target, scope="global"), x)
    rep = sk.record_of(small).report
    removed = 1 - rep.macs_ratio
    assert target - 1e-9 <= removed <= target + 0.02, (name, removed)
    assert rep.macs_after == DependencyGraph.build(small, x).macs()
    with torch.no_grad():
        y = small(x)
    assert y.shape == model(x).shape and torch.isfinite(y).all()
    assert _params(small) < _params(model)


@pytest.mark.parametrize("name", FAST)
def test_pruned_model_saves_loads_and_exports(name, tmp_path):
    model, x = build(name)
    small = sk.prune(model, sk.PruneConfig(target_macs=0.5), x)
    sk.save(small, tmp_path / "a", template=build(name)[0])
    again = sk.load(tmp_path / "a", model=build(name)[0])
    with torch.no_grad():
        ref = small(x)
        torch.testing.assert_close(again(x), ref, rtol=0, atol=0)
    sk.export(small, x, tmp_path / "m.onnx")
    out = session(tmp_path / "m.onnx", "ort").run(x)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-4, atol=1e-4)


def _touches_norm(model, group) -> bool:
    """LayerNorm / GroupNorm statistics run over the channels: removing a zero channel
    changes them, so the zero-channel invariant does not hold for those groups."""
    mods = dict(model.named_modules())
    return any(isinstance(mods.get(m.module), nn.LayerNorm | nn.GroupNorm)
               for m in group.members)


class MHANet(nn.Module):
    """nn.MultiheadAttention between two linears, no norm: heads cut the embedding."""

    def __init__(self):
        super().__init__()
        self.inp, self.attn, self.out = nn.Linear(8, 32), nn.MultiheadAttention(
            32, 4, batch_first=True), nn.Linear(32, 3)

    def forward(self, x):
        t = self.inp(x)
        return self.out(self.attn(t, t, t, need_weights=False)[0].mean(1))


def _zero(model, graph, group, channels):
    params = dict(model.named_parameters())
    with torch.no_grad():
        for m in group.members:
            if m.kind == "param":
                owner = graph.spaces.owner(graph.param_dims[m.name][m.dim], group.leaf)
                idx = torch.isin(owner, torch.tensor(channels)).nonzero().flatten()
                params[m.name].index_fill_(m.dim, idx, 0.0)


@pytest.mark.parametrize("name", [*sorted(FAMILIES), "mha"])
def test_cutting_zero_channels_leaves_outputs_unchanged(name):
    if name == "mha":
        torch.manual_seed(0)
        model, x = MHANet().eval(), torch.randn(2, 5, 8)
    else:
        model, x = build(name)
    graph = DependencyGraph.build(model, x)
    modules = dict(model.named_modules())
    # the groups channel pruning cuts (a part of every head is not one: a smaller head_dim
    # changes SDPA's 1/√d scaling), except those a norm's statistics run over
    groups = [g for g in graph.groups()
              if _wanted(g, "channel", modules) and not _touches_norm(model, g)]
    assert groups
    keep = {}
    for g in groups:
        _zero(model, graph, g, list(range(1, g.size, 2)))
        keep[g.leaf] = torch.arange(0, g.size, 2)
    with torch.no_grad():
        ref = model(x)
    small = copy_model(model)
    cut(small, graph, keep)
    with torch.no_grad():
        torch.testing.assert_close(small(x), ref, rtol=0, atol=2e-5)
    assert _params(small) < _params(model)


def test_recurrent_hidden_units_are_cut_across_gates_layers_and_directions():
    model, x = build("bigru")
    small = sk.prune(model, sk.PruneConfig(ratio=0.5), x)
    rnn = small.rnn
    e = small.emb.embedding_dim
    assert e == 8 and rnn.hidden_size == 8 and rnn.weight_ih_l0.shape == (3 * 8, e)
    assert rnn.weight_ih_l1.shape == (3 * 8, 2 * 8) and rnn.weight_hh_l1_reverse.shape == (24, 8)
    assert small.fc.in_features == 16


def test_concat_into_grouped_conv_is_aligned_per_group_position():
    model, x = build("se_concat_grouped_mha")
    small = sk.prune(model, sk.PruneConfig(ratio=0.5), x)
    g = small.grouped[0]
    assert g.groups == 4 and g.in_channels == small.b1[0].out_channels + small.b2[0].out_channels
    assert g.in_channels < 48 and g.out_channels < 64
    a = small.attn  # whole heads carry the embedding channels (see test below)
    assert a.embed_dim == small.proj.out_channels == a.num_heads * a.head_dim < 32


def test_multihead_attention_heads_update_its_attributes():
    torch.manual_seed(0)
    model, x = MHANet().eval(), torch.randn(2, 5, 8)
    small = sk.prune(model, sk.PruneConfig(granularity="head", ratio=0.5), x)
    a = small.attn
    assert (a.num_heads, a.head_dim, a.embed_dim) == (2, 8, 16)
    assert a.in_proj_weight.shape == (48, 16) and small.inp.out_features == 16


def test_transposed_conv_channels_and_attributes():
    model, x = build("unet")
    small = sk.prune(model, sk.PruneConfig(ratio=0.5), x)
    up = small.up
    assert (up.in_channels, up.out_channels) == (16, 8) and up.weight.shape[:2] == (16, 8)
    assert small.dec[0].in_channels == 8 + small.enc1[0].out_channels


def test_tied_embeddings_are_cut_together_and_stay_tied_after_load(tmp_path):
    """GPT-2 (transformers, config-built): the output layer shares the input embedding; both
    lose the same residual channels, and a reloaded model shares one tensor again."""
    model, x = build("gpt2_tiny")
    small = sk.prune(model, sk.PruneConfig(target_macs=0.5), x)
    rep = sk.record_of(small).report
    lm = small.lm
    assert lm.lm_head.weight is lm.transformer.wte.weight
    assert lm.transformer.wte.weight.shape[1] < 64 and rep.groups_pruned == rep.groups
    assert lm.transformer.h[0].attn.c_attn.nf == lm.transformer.h[0].attn.c_attn.weight.shape[1]
    sk.save(small, tmp_path / "a", template=build("gpt2_tiny")[0])
    again = sk.load(tmp_path / "a", model=build("gpt2_tiny")[0]).lm
    assert again.lm_head.weight is again.transformer.wte.weight


def test_a_tied_tensor_is_one_set_of_spaces_counted_once():
    model, x = build("gpt2_tiny")
    g = DependencyGraph.build(model, x)
    lm = "lm.lm_head.weight", "lm.transformer.wte.weight"
    assert g.param_dims[lm[0]] == g.param_dims[lm[1]] and len(g.aliases) == 1
    assert g.params() == _params(model)  # nn.Module.parameters() counts it once too
