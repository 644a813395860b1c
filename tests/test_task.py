"""The task: the loss, distillation loss, metric and checks each kind uses — by type and by
value on fixed tiny batches, against PyTorch and scikit-learn as references."""

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, f1_score, r2_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from slimkit.distill import kd_loss
from slimkit.errors import ConfigError
from slimkit.metrics import f1, mean_ap, mse, r2, token_top1, top1
from slimkit.task import Task, infer
from slimkit.train import TaskLoss, TrainConfig, Trainer

g = torch.Generator().manual_seed(0)
LOGITS = torch.randn(6, 4, generator=g)
CLASSES = torch.tensor([0, 3, 1, 2, 2, 0])
REAL = torch.randn(6, 4, generator=g)
LABELS = (torch.rand(6, 4, generator=g) > 0.5).float()
TOKENS = torch.randn(2, 5, 4, generator=g)  # (B, T, classes)
TOKEN_Y = torch.tensor([[0, 1, -100, 3, 2], [1, -100, -100, 0, 3]])


@pytest.mark.parametrize("task, out, y, want", [
    (Task.classification(), LOGITS, CLASSES, F.cross_entropy(LOGITS, CLASSES)),
    (Task.multilabel(), LOGITS, LABELS, F.binary_cross_entropy_with_logits(LOGITS, LABELS)),
    (Task.regression(), LOGITS, REAL, F.mse_loss(LOGITS, REAL)),
    (Task.regression(loss="huber"), LOGITS, REAL, F.huber_loss(LOGITS, REAL)),
    (Task.token_classification(), TOKENS, TOKEN_Y,
     F.cross_entropy(TOKENS.reshape(-1, 4), TOKEN_Y.reshape(-1), ignore_index=-100)),
    (Task.embedding(), LOGITS, REAL,
     1 - F.cosine_similarity(LOGITS, REAL).mean() + F.mse_loss(LOGITS, REAL)),
])
def test_each_task_trains_with_its_own_loss(task, out, y, want):
    assert torch.allclose(task.loss_value(out, y), want)


def test_distillation_loss_per_task():
    t = LOGITS + 0.3 * REAL  # a teacher close to the student
    cls = Task.classification().distill_value(LOGITS, t, CLASSES, 4.0, 0.9)
    assert torch.allclose(cls, kd_loss(LOGITS, t, CLASSES, 4.0, 0.9))  # Hinton, T² scaled
    reg = Task.regression().distill_value(LOGITS, t, REAL, 4.0, 0.7)
    assert torch.allclose(reg, 0.7 * F.mse_loss(LOGITS, t) + 0.3 * F.mse_loss(LOGITS, REAL))
    emb = Task.embedding().distill_value(LOGITS, t, None, 4.0, 0.9)
    assert torch.allclose(emb, 1 - F.cosine_similarity(LOGITS, t).mean() + F.mse_loss(LOGITS, t))
    # per token: ignored positions are left out of the KL
    tt = TOKENS + 0.1
    tok = Task.token_classification().distill_value(TOKENS, tt, TOKEN_Y, 2.0, 1.0)
    keep = TOKEN_Y.reshape(-1) != -100
    s, r = TOKENS.reshape(-1, 4)[keep], tt.reshape(-1, 4)[keep]
    want = 4.0 * F.kl_div(F.log_softmax(s / 2, -1), F.softmax(r / 2, -1), reduction="batchmean")
    assert torch.allclose(tok, want)
    # a student equal to its teacher has nothing to learn: exactly zero
    assert float(Task.regression().distill_value(LOGITS, LOGITS, None, 4.0, 1.0)) == 0.0


def _loader(x, y, batch=3):
    return DataLoader(TensorDataset(x, y), batch_size=batch)


class Fixed(nn.Module):
    """Returns the outputs it was built with, batch by batch."""

    def __init__(self, out):
        super().__init__()
        self.out, self.i = out, 0

    def forward(self, x):
        rows = self.out[self.i:self.i + len(x)]
        self.i = (self.i + len(x)) % len(self.out)
        return rows


def test_metrics_match_scikit_learn():
    idx = torch.arange(6).float().unsqueeze(1)
    assert top1(Fixed(LOGITS), _loader(idx, CLASSES)) == pytest.approx(
        100 * float((LOGITS.argmax(1) == CLASSES).float().mean()))
    assert mse(Fixed(LOGITS), _loader(idx, REAL)) == pytest.approx(float(F.mse_loss(LOGITS, REAL)))
    assert r2(Fixed(LOGITS), _loader(idx, REAL)) == pytest.approx(
        r2_score(REAL.numpy(), LOGITS.numpy()), abs=1e-5)
    assert mean_ap(Fixed(LOGITS), _loader(idx, LABELS)) == pytest.approx(
        100 * average_precision_score(LABELS.numpy(), LOGITS.numpy(), average="macro"),
        abs=1e-4)
    assert f1(Fixed(LOGITS), _loader(idx, LABELS)) == pytest.approx(
        100 * f1_score(LABELS.numpy(), (LOGITS > 0).numpy(), average="micro"), abs=1e-4)
    tok_idx = torch.arange(2).float().unsqueeze(1)
    keep = TOKEN_Y != -100
    assert token_top1(Fixed(TOKENS), _loader(tok_idx, TOKEN_Y)) == pytest.approx(
        100 * float((TOKENS.argmax(-1)[keep] == TOKEN_Y[keep]).float().mean()))


def test_metric_direction_and_budget_limits():
    m = Task.regression().metric_spec()
    assert not m.higher_is_better and m.drop(0.5, 0.6) == pytest.approx(0.1)
    assert m.worse(0.5, 0.6) == 0.6 and m.limit(0.5, 0.05) == pytest.approx(0.55)
    a = Task.classification().metric_spec()
    assert a.higher_is_better and a.drop(90, 89) == 1 and a.worse(90, 89.5) == 89.5


@pytest.mark.parametrize("out, y, kind, reason", [
    (LOGITS, CLASSES, "classification", "class indices [B]"),
    (LOGITS[:, :1], REAL[:, :1], "regression", "real values"),
    (LOGITS, None, "embedding", "no target"),
    (TOKENS, TOKEN_Y, "token_classification", "per position"),
    (LOGITS, LABELS.bool(), "multilabel", "0/1 labels"),
    (LOGITS, LABELS.long(), "multilabel", "one per output"),
])
def test_the_task_is_inferred_where_the_data_is_unambiguous(out, y, kind, reason):
    task = infer(out, y)
    assert task.kind == kind and reason in task.reason


def test_float_labels_say_how_to_ask_for_multilabel_and_ambiguity_is_refused():
    assert "state task: multilabel" in infer(LOGITS, LABELS).reason  # regression, with a hint
    with pytest.raises(ConfigError, match="cannot infer the task"):
        infer(LOGITS, torch.randint(0, 5, (6, 7)))


@pytest.mark.parametrize("task, out, y, message", [
    (Task.classification(), LOGITS[:, :1], REAL[:, :1],
     "cross-entropy needs class indices.*state task: regression"),
    (Task.regression(), LOGITS[:, :1], CLASSES, "MSE on class indices.*task: classification"),
    (Task.classification(), LOGITS, CLASSES + 4, r"class indices must lie in \[0, 4\)"),
    (Task.multilabel(), LOGITS, REAL, "must be 0 or 1"),
    (Task.classification(), LOGITS, None, "needs targets.*task: embedding"),
    (Task.token_classification(), TOKENS, CLASSES, r"outputs \[B, T, classes\]"),
])
def test_a_loss_that_does_not_fit_the_targets_is_refused(task, out, y, message):
    with pytest.raises(ConfigError, match=message):
        task.check(out, y)


def test_configs_are_checked_on_construction():
    with pytest.raises(ConfigError, match="metric 'top1' does not fit task regression"):
        Task("regression", metric="top1")
    with pytest.raises(ConfigError, match="custom needs loss"):
        Task("custom")
    with pytest.raises(ConfigError, match="state higher_is_better"):
        Task("classification", metric="pkg.mod:fn")
    with pytest.raises(ConfigError, match="loss='mae' is not allowed; choose one of"):
        Task("regression", loss="mae")
    with pytest.raises(ConfigError, match="task='ranking' is not allowed"):
        Task.of("ranking")


@pytest.mark.parametrize("task, make_y", [
    ("classification", lambda n: torch.randint(0, 3, (n,))),
    ("regression", lambda n: torch.randn(n, 3)),
    ("multilabel", lambda n: (torch.rand(n, 3) > 0.5).float()),
])
def test_one_step_gives_every_task_nonzero_gradients(task, make_y):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(32, 5)
    loss = TaskLoss(task)(model, x, make_y(32))
    loss.backward()
    assert math.isfinite(loss.item()) and loss.item() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_the_trainer_uses_the_task_loss_and_its_loss_falls():
    torch.manual_seed(0)
    x = torch.randn(256, 5)
    y = x @ torch.randn(5, 1)
    model = nn.Linear(5, 1)
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, progress=False, schedule="constant")
    with Trainer(model, cfg, TensorDataset(x, y), task=Task.regression()) as t:
        hist = t.fit()
    losses = [h["loss"] for h in hist if "loss" in h]
    assert losses[-1] < 0.5 * losses[0]
