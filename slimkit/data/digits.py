"""scikit-learn's bundled digits (1,797 real 8×8 images): no download, a fixed split."""

from __future__ import annotations

import functools

import torch
from torch.utils.data import DataLoader, TensorDataset

# Pixel statistics of the whole set (values 0..16), fixed so train and test see the same
# normalisation whatever the split.
_MEAN, _STD = 4.884, 6.017
TEST_FRACTION = 0.25  # 450 test images: one image is 0.22 accuracy points


@functools.cache  # one load and split per process; the datasets are read-only
def digits_tensors(split_seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    from sklearn.datasets import load_digits as sk_load
    from sklearn.model_selection import train_test_split

    d = sk_load()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1)  # (1797, 1, 8, 8)
    x = (x - _MEAN) / _STD
    y = torch.tensor(d.target, dtype=torch.long)
    idx_train, idx_test = train_test_split(
        range(len(y)), test_size=TEST_FRACTION, random_state=split_seed, stratify=d.target
    )
    return TensorDataset(x[idx_train], y[idx_train]), TensorDataset(x[idx_test], y[idx_test])


def resized(ds: TensorDataset, size: int = 8, channels: int = 1) -> TensorDataset:
    """The 8×8 images resized to size×size (bilinear) with the grey plane repeated `channels`
    times: real data for networks that need an RGB input larger than 8×8 (ResNet- and
    MobileNetV2-like families at 32×32). size 8 and one channel: `ds` as it is."""
    if size == 8 and channels == 1:
        return ds
    x, y = ds.tensors  # (N, 1, 8, 8)
    if size != 8:
        x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return TensorDataset(x.expand(-1, channels, -1, -1).contiguous(), y)  # (N, C, size, size)


def load_digits(batch_size: int = 64, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """(train, test) loaders. The split is fixed; `seed` orders the training shuffle."""
    train, test = digits_tensors()
    g = torch.Generator().manual_seed(seed)
    return (
        DataLoader(train, batch_size=batch_size, shuffle=True, generator=g),
        DataLoader(test, batch_size=256, shuffle=False),
    )
