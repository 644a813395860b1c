"""Unstructured / N:M masks, schedules as callbacks, regularizers as loss terms."""

import pytest
import torch
from torch.utils.data import TensorDataset

import slimkit as sk
from slimkit.data.digits import digits_tensors
from slimkit.graph.deps import DependencyGraph
from slimkit.models import DigitsCNN
from slimkit.pruning import schedule as S
from slimkit.pruning.regularizers import bn_l1, group_lasso, with_penalty
from slimkit.pruning.unstructured import sparsity
from slimkit.train import TrainConfig, Trainer
from slimkit.train.trainer import cross_entropy
from tests.pruning.nets import build


def test_layerwise_and_global_unstructured():
    model, x = build("chain")
    small = sk.prune(model, sk.PruneConfig(granularity="unstructured", ratio=0.5), x)
    for name, s in sparsity(small).items():
        assert abs(s - 0.5) < 0.01, name
    small = sk.prune(model, sk.PruneConfig(granularity="unstructured", ratio=0.7,
                                              scope="global"), x)
    ws = [m.weight for m in small.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    zeros = sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)
    assert abs(zeros - 0.7) < 0.01
    kept = torch.cat([w[w != 0].abs() for w in ws]).min()
    pruned_max = max(float(m.weight.detach().abs()[w == 0].max()) for m, w in zip(
        [m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)], ws,
        strict=True) if (w == 0).any())
    assert kept >= pruned_max  # one global threshold on |w|


def test_nm_2_4_and_compression_roundtrip():
    model, x = build("chain")
    small = sk.prune(model, sk.PruneConfig(granularity="nm", n=2, m=4), x)
    rep = sk.record_of(small).report
    assert any("body.0.0.weight kept dense" in n for n in rep.notes)  # 3·3·3 = 27 inputs
    w = small.fc.weight
    assert ((w.reshape(w.shape[0], -1, 4) != 0).sum(-1) <= 2).all()
    vals, pos = sk.sparse.nm_compress(w.detach(), 2, 4)
    assert vals.shape == (10, w.shape[1] // 2) and pos.dtype == torch.uint8
    assert torch.equal(sk.sparse.nm_decompress(vals, pos, 2, 4), w.detach())


def test_agp_and_iterative_ratios():
    assert S.agp_ratio(0, 0.8, 0, 100) == 0.0 and S.agp_ratio(100, 0.8, 0, 100) == 0.8
    assert S.agp_ratio(50, 0.8, 0, 100) == pytest.approx(0.8 - 0.8 * 0.125)
    r = S.iterative_ratios(0.75, 2)
    assert r == pytest.approx([0.5, 0.75])


def _digits_trainer(model, callbacks, epochs=2, loss_fn=cross_entropy):
    train, test = digits_tensors()
    cfg = TrainConfig(epochs=epochs, lr=3e-3, progress=False)
    return Trainer(model, cfg, train, test, callbacks=callbacks, loss_fn=loss_fn)


def test_agp_schedule_grows_masks_and_keepmasks_holds_them():
    x = torch.randn(2, 1, 8, 8)
    agp = S.AGP(0.6, start=0, end=30, every=10, example_inputs=x,
                config=lambda r: sk.PruneConfig(granularity="unstructured", ratio=r))
    t = _digits_trainer(DigitsCNN(width=0.5), [agp, S.KeepMasks()])
    t.fit()
    assert [round(r, 3) for _, r in agp.history] == [0.422, 0.578, 0.6]
    for name, s in sparsity(t.model).items():
        assert abs(s - 0.6) < 0.01, name  # still 60% after the last 14 optimizer steps
    assert t.evaluate() > 85.0


def test_structured_one_shot_inside_training_shrinks_the_model():
    x = torch.randn(2, 1, 8, 8)
    shot = S.OneShot(at=20, ratio=0.5, example_inputs=x,
                     config=lambda r: sk.PruneConfig(ratio=r))
    model = DigitsCNN(width=0.5)
    before = sum(p.numel() for p in model.parameters())
    t = _digits_trainer(model, [shot], epochs=3)
    t.fit()
    assert sum(p.numel() for p in t.model.parameters()) < 0.4 * before
    assert t.evaluate() > 90.0  # trained on after the cut, with a fresh optimizer


def test_bn_l1_and_group_lasso_penalties():
    model, x = build("residual")
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn_l1(0.1)(model).item() == pytest.approx(
        0.1 * sum(float(b.weight.abs().sum()) for b in bns), rel=1e-5)
    graph = DependencyGraph.build(model, x)
    gl = group_lasso(1.0, graph)(model)
    manual = 0.0
    params = dict(model.named_parameters())
    for g in graph.groups():
        sq = torch.zeros(g.size, dtype=torch.float64)
        for m in g.members:
            if m.kind == "param":
                own = graph.spaces.owner(graph.param_dims[m.name][m.dim], g.leaf)
                w = params[m.name].detach().double().pow(2).movedim(m.dim, 0)
                sq.index_add_(0, own[own >= 0], w.reshape(w.shape[0], -1).sum(1)[own >= 0])
        manual += float(sq.sqrt().sum())
    assert gl.item() == pytest.approx(manual, rel=1e-5)
    gl.backward()
    assert params["stem.0.weight"].grad is not None


def test_slimming_then_bn_gamma_importance_cuts_the_small_scales():
    model, x = build("chain")
    with torch.no_grad():
        model.body[0][1].weight[:8] = 1e-4  # "trained to zero" by the L1 penalty
    small = sk.prune(model, sk.PruneConfig(ratio=0.5, importance="bn_gamma",
                                              rules=(sk.PruneRule("body.1.*", skip=True),
                                                     sk.PruneRule("body.2.*", skip=True))), x)
    kept_gamma = small.body[0][1].weight
    assert kept_gamma.shape == (8,) and bool((kept_gamma > 0.4).all())


def test_taylor_needs_data_and_uses_it():
    model, x = build("chain")
    with pytest.raises(sk.ConfigError, match="taylor"):
        sk.prune(model, sk.PruneConfig(ratio=0.5, importance="taylor"), x)
    data = [(x, torch.tensor([1, 3]))] * 2
    a = sk.prune(model, sk.PruneConfig(ratio=0.5, importance="taylor"), x, data=data)
    b = sk.prune(model, sk.PruneConfig(ratio=0.5, importance="random"), x)
    assert a.body[0][0].out_channels == b.body[0][0].out_channels == 8
    assert not torch.equal(a.body[0][0].weight, b.body[0][0].weight)


def test_with_penalty_adds_to_the_task_loss():
    model, x = build("chain")
    y = torch.tensor([0, 1])
    plain = cross_entropy(model, x, y)
    total = with_penalty(cross_entropy, bn_l1(0.01))(model, x, y)
    assert total.item() > plain.item()
    _ = TensorDataset  # the trainer test above covers DataLoader-fed training


def test_the_last_matching_rule_wins_on_the_unstructured_path():
    model, x = build("chain")
    cfg = sk.PruneConfig(granularity="unstructured", ratio=0.5,
                         rules=(sk.PruneRule("*", skip=True), sk.PruneRule("fc", ratio=0.5)))
    small = sk.prune(model, cfg, x)
    zeros = sparsity(small)
    assert zeros["fc.weight"] == pytest.approx(0.5, abs=0.01)  # the later rule prunes fc
    assert all(v == 0.0 for k, v in zeros.items() if k != "fc.weight")
    cfg = sk.PruneConfig(granularity="unstructured", ratio=0.5,
                         rules=(sk.PruneRule("fc", ratio=0.5), sk.PruneRule("*", skip=True)))
    with pytest.raises(sk.errors.ConfigError, match="every layer is skipped"):
        sk.prune(model, cfg, x)  # the later skip-all wins: nothing left to prune
