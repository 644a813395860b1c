"""Digits resized for RGB networks: the same images, the grey plane repeated, in recipes too."""

import pytest
import torch

from slimkit.data.digits import digits_tensors, resized
from slimkit.pipeline.recipe import DataSpec


def test_resized_keeps_labels_and_repeats_the_grey_plane():
    train, _ = digits_tensors()
    assert resized(train) is train  # 8×8, one channel: as it is
    big = resized(train, 32, 3)
    x, y = big.tensors
    assert x.shape == (len(train), 3, 32, 32) and torch.equal(y, train.tensors[1])
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    # bilinear upsampling keeps each image's mean brightness close
    small_mean, big_mean = train.tensors[0].mean((1, 2, 3)), x.mean((1, 2, 3))
    assert float((small_mean - big_mean).abs().max()) < 0.15


def test_a_recipe_asks_for_size_and_channels_and_bad_values_are_named():
    spec = DataSpec.model_validate({"digits": {"size": 32, "channels": 3}})
    assert (spec.digits.size, spec.digits.channels) == (32, 3)
    with pytest.raises(ValueError, match="size"):
        DataSpec.model_validate({"digits": {"size": 4}})
    with pytest.raises(ValueError, match="channels"):
        DataSpec.model_validate({"digits": {"channels": 2}})
