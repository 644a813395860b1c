"""The data contract: every accepted batch form is read the same way everywhere, every other
form is refused with its structure and the accepted forms named."""

import pytest
import torch
from torch import nn

from slimkit.batch import BatchError, as_args, call_model, check, describe, split, take

X, Y = torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
A, B = torch.randn(4, 3), torch.randn(4, 5)


class One(nn.Module):
    def forward(self, x):
        return x.sum(1, keepdim=True)


class Two(nn.Module):
    def forward(self, a, b):
        return a.sum(1, keepdim=True) + b.sum(1, keepdim=True)


class Keywords(nn.Module):
    def forward(self, input_ids, attention_mask=None):
        return input_ids.float().sum(1, keepdim=True)


@pytest.mark.parametrize("batch, inputs, target", [
    (X, X, None),
    ((X,), X, None),
    ([X], X, None),
    ((X, Y), X, Y),
    ([X, Y], X, Y),
    (((A, B), Y), (A, B), Y),
    ([[A, B], Y], (A, B), Y),
    (((A, B),), (A, B), None),
    ({"input_ids": X, "labels": Y}, {"input_ids": X}, Y),
    ({"input_ids": X, "y": Y}, {"input_ids": X}, Y),
    ({"input_ids": X}, {"input_ids": X}, None),
])
def test_every_accepted_form_splits_into_inputs_and_target(batch, inputs, target):
    got_inputs, got_target = split(batch)
    if isinstance(inputs, dict):
        assert got_inputs.keys() == inputs.keys()
    elif isinstance(inputs, tuple):
        assert all(g is i for g, i in zip(got_inputs, inputs, strict=True))
    else:
        assert got_inputs is inputs
    assert got_target is target


def test_one_and_two_input_models_run_on_their_batches():
    assert torch.equal(call_model(One(), (X, Y)), X.sum(1, keepdim=True))
    assert torch.equal(call_model(One(), (X,)), X.sum(1, keepdim=True))
    want = A.sum(1, keepdim=True) + B.sum(1, keepdim=True)
    assert torch.equal(call_model(Two(), ((A, B), Y)), want)
    assert torch.equal(call_model(Keywords(), {"input_ids": X, "labels": Y}),
                       X.sum(1, keepdim=True))
    for batch in (X, (X,), (X, Y)):
        check(One(), batch)
    check(Two(), ((A, B), Y))
    check(Keywords(), {"input_ids": X, "labels": Y})


@pytest.mark.parametrize("batch, message", [
    ((X, Y, Y), r"batch tuple\(Tensor\[4, 3\] float32, Tensor\[4\] int64, Tensor\[4\] int64\)"
                r": a tuple of 3 items is ambiguous.*\(x,\), \(x, y\), \(\(x1, x2, …\), y\)"),
    ((), r"a tuple of 0 items"),
    ({}, r"the dict is empty"),
    ({"input_ids": X, "labels": Y, "y": Y}, r"both \['labels', 'y'\]"),
    ({"labels": Y}, r"a target but no inputs"),
    ("text", r"a str is not a batch"),
    ((("a", "b"), Y), r"its first item \(tuple\(str, str\)\) is not the model's inputs"),
])
def test_other_forms_are_refused_naming_their_structure(batch, message):
    with pytest.raises(BatchError, match=message):
        split(batch)


def test_a_two_input_model_given_a_pair_is_told_how_to_batch_it():
    # (a, b) is read as (inputs, target): the model misses its second input
    with pytest.raises(BatchError, match=r"is read as \(inputs, target\), but Two.forward\(a, "
                                         r"b\) takes 2 required input\(s\): give \(\(a, b\), "
                                         r"target\) or \(\(a, b\),\)"):
        check(Two(), (A, B))
    with pytest.raises(BatchError, match=r"gives 2 input\(s\), but One.forward\(x\) takes 1"):
        check(One(), ((A, B), Y))


def test_dict_keys_must_name_forward_parameters():
    with pytest.raises(BatchError, match=r"keys \['pixels'\] are not parameters of "
                                         r"Keywords.forward\(input_ids, attention_mask=None\)"):
        check(Keywords(), {"pixels": X, "labels": Y})

    class Anything(nn.Module):
        def forward(self, **kwargs):
            return kwargs["pixels"]

    check(Anything(), {"pixels": X})  # **kwargs takes any key


def test_example_helpers():
    assert describe({"a": X}) == "dict(a: Tensor[4, 3] float32)"
    assert take((A, B), 2)[1].shape == (2, 5)
    ordered = as_args({"attention_mask": B, "input_ids": A}, Keywords())  # forward's order
    assert ordered[0] is A and ordered[1] is B
    assert as_args(X)[0] is X and len(as_args(X)) == 1
