"""Training that trains nothing is an error within the first steps, naming the loss."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from slimkit.distill import Distiller
from slimkit.train import TrainConfig, Trainer, TrainingError

CFG = TrainConfig(epochs=2, batch_size=16, progress=False)


def _data(y):
    return TensorDataset(torch.randn(len(y), 5, generator=torch.Generator().manual_seed(0)), y)


def _fit(model, data, **kw):
    with Trainer(model, CFG, data, **kw) as t:
        return t.fit()


def test_cross_entropy_on_real_valued_targets_is_refused_not_trained():
    # one output column: softmax is 1, cross-entropy exactly 0, gradients 0 — the regression
    # that used to "finish" with an unchanged model
    with pytest.raises(TrainingError, match=r"classification: cross-entropy\) is 0"):
        _fit(nn.Linear(5, 1), _data(torch.randn(64, 1)))


def test_the_regression_task_trains_the_same_model():
    model = nn.Linear(5, 1)
    before = model.weight.detach().clone()
    _fit(model, _data(torch.randn(64, 1)), task="regression")
    assert not torch.equal(before, model.weight)


def test_a_constant_a_nan_and_a_detached_loss_are_refused():
    data = _data(torch.randint(0, 3, (64,)))
    with pytest.raises(TrainingError, match="does not depend on the model's parameters"):
        _fit(nn.Linear(5, 3), data, loss_fn=lambda m, x, y: torch.tensor(1.0))
    with pytest.raises(TrainingError, match="is nan at step 0"):
        _fit(nn.Linear(5, 3), data, loss_fn=lambda m, x, y: m(x).sum() * float("nan"))
    with pytest.raises(TrainingError, match="zero gradient for the first 3 steps"):
        _fit(nn.Linear(5, 3), data, loss_fn=lambda m, x, y: m(x).sum() * 0 + 1)


def test_distilling_a_student_equal_to_its_teacher_is_refused():
    teacher = nn.Linear(5, 3)
    student = nn.Linear(5, 3)
    student.load_state_dict(teacher.state_dict())
    with pytest.raises(TrainingError, match="is 0 .*equals its teacher"):
        _fit(student, _data(torch.randint(0, 3, (64,))),
             loss_fn=Distiller(teacher, alpha=1.0))
