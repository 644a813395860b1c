"""Models and data for tasks other than image classification — what the example recipes
`diabetes_regression.yaml`, `two_inputs.yaml` and `audio_conv1d.yaml` name.

    diabetes_mlp / diabetes_loaders   a regressor on scikit-learn's diabetes data (442 real
                                      patients, 10 features; the target standardized)
    TwoInputNet / two_input_loaders   a classifier with two inputs on the real digits: the 8×8
                                      image and its 16-value row / column ink profile, batches
                                      ((image, profile), label)
    AudioNet / audio_loaders          a 1-D conv classifier on synthetic audio: 8 classes of
                                      tone patterns in noise (a stand-in for the audio model
                                      a user brings; there is no bundled audio data set)
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from slimkit.data.digits import digits_tensors
from slimkit.data.text import text_splits
from slimkit.metrics import mae
from slimkit.models.hf import minilm_path


# ---- regression ---------------------------------------------------------------------------
def diabetes_mlp(hidden: int = 64) -> nn.Module:
    return nn.Sequential(nn.Linear(10, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, 1))


@functools.cache
def diabetes_tensors(seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """(train, test): 331 / 111 patients, features and target standardized on train."""
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    x, y = load_diabetes(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=seed)
    mx, sx, my, sy = xtr.mean(0), xtr.std(0), ytr.mean(), ytr.std()

    def ds(a, b):
        return TensorDataset(torch.tensor((a - mx) / sx, dtype=torch.float32),
                             torch.tensor((b - my) / sy, dtype=torch.float32).unsqueeze(1))
    return ds(xtr, ytr), ds(xte, yte)


def diabetes_loaders(batch_size: int = 32, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    train, test = diabetes_tensors(seed)
    return (DataLoader(train, batch_size=batch_size, shuffle=True),
            DataLoader(test, batch_size=256))


def absolute_error(outputs: torch.Tensor, batch) -> torch.Tensor:
    """A loss of the user's own (task custom): fn(outputs, batch) -> scalar; `batch` is the
    batch as the data contract reads it, here (inputs, target)."""
    _, y = batch
    return (outputs - y.reshape(outputs.shape)).abs().mean()


def mean_absolute_error(model: nn.Module, loader) -> float:
    """A metric of the user's own: fn(model, loader) -> float (here lower is better)."""
    return mae(model, loader)


# ---- two inputs -----------------------------------------------------------------------------
class TwoInputNet(nn.Module):
    """forward(image, profile): a conv branch on the image, a linear branch on the profile,
    joined before the classifier."""

    def __init__(self, width: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.image = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1, stride=2), nn.BatchNorm2d(2 * width),
            nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.profile = nn.Sequential(nn.Linear(16, 2 * width), nn.ReLU())
        self.head = nn.Linear(4 * width, classes)

    def forward(self, image: torch.Tensor, profile: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.image(image), self.profile(profile)], dim=1))


class _TwoInputs(Dataset):
    """((image (1, 8, 8), profile (16,)), label): the profile is the image's row and column
    means, a second view of the same real digit."""

    def __init__(self, ds: TensorDataset) -> None:
        self.x, self.y = ds.tensors
        self.p = torch.cat([self.x.mean(3).flatten(1), self.x.mean(2).flatten(1)], dim=1)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return (self.x[i], self.p[i]), self.y[i]


def two_input_loaders(batch_size: int = 64) -> tuple[DataLoader, DataLoader]:
    train, test = digits_tensors()
    return (DataLoader(_TwoInputs(train), batch_size=batch_size, shuffle=True),
            DataLoader(_TwoInputs(test), batch_size=256))


# ---- audio-style 1-D convolution -------------------------------------------------------------
class AudioNet(nn.Module):
    """Conv1d → BN → ReLU blocks with stride, global average pool, a linear classifier."""

    def __init__(self, width: int = 32, classes: int = 8) -> None:
        super().__init__()
        layers, c = [], 1
        for i, k in enumerate((9, 5, 5, 3)):
            out = width * min(2 ** i, 4)
            layers += [nn.Conv1d(c, out, k, stride=2, padding=k // 2), nn.BatchNorm1d(out),
                       nn.ReLU()]
            c = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.classifier = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 1, samples)
        return self.classifier(self.features(x))


@functools.cache
def audio_tensors(n: int = 2000, samples: int = 1024, noise: float = 1.2,
                  seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """8 classes: a tone at one of four pitches, steady or rising, with a random phase,
    amplitude, onset and Gaussian noise; 80 / 20 split."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 8, (n,), generator=g)
    t = torch.arange(samples) / 8000.0  # 8 kHz
    pitch = 300.0 * (1.25 ** (y % 4)).unsqueeze(1)  # (n, 1) Hz
    rise = (y // 4).unsqueeze(1) * 400.0  # Hz per second
    phase = torch.rand(n, 1, generator=g) * 2 * math.pi
    amp = 0.5 + torch.rand(n, 1, generator=g)
    onset = torch.randint(0, samples // 2, (n, 1), generator=g)
    on = (torch.arange(samples).unsqueeze(0) >= onset).float()
    wave = amp * on * torch.sin(2 * math.pi * (pitch + rise * t) * t + phase)
    x = (wave + noise * torch.randn(n, samples, generator=g)).unsqueeze(1)
    cut = int(0.8 * n)
    return TensorDataset(x[:cut], y[:cut]), TensorDataset(x[cut:], y[cut:])


def audio_loaders(batch_size: int = 64, noise: float = 1.2) -> tuple[DataLoader, DataLoader]:
    train, test = audio_tensors(noise=noise)
    return (DataLoader(train, batch_size=batch_size, shuffle=True),
            DataLoader(test, batch_size=256))


# ---- multi-label --------------------------------------------------------------------------
# attributes of the digit each real image shows: even, greater than 4, prime, a closed loop
ATTRIBUTES = torch.tensor([[1, 0, 0, 1], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 1, 0],
                           [1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 0, 1], [0, 1, 1, 0],
                           [1, 1, 0, 1], [0, 1, 0, 1]], dtype=torch.float32)


def digit_attribute_loaders(batch_size: int = 64) -> tuple[DataLoader, DataLoader]:
    """The real digits with 4 yes/no attributes per image as targets (B, 4) of 0/1."""
    def relabel(ds: TensorDataset) -> TensorDataset:
        x, y = ds.tensors
        return TensorDataset(x, ATTRIBUTES[y])
    train, test = digits_tensors()
    return (DataLoader(relabel(train), batch_size=batch_size, shuffle=True),
            DataLoader(relabel(test), batch_size=256))


def digit_image_loaders(batch_size: int = 64) -> tuple[DataLoader, DataLoader]:
    """The real digits without labels, batches (x,): what an embedding model is given."""
    train, test = digits_tensors()
    return (DataLoader(TensorDataset(train.tensors[0]), batch_size=batch_size, shuffle=True),
            DataLoader(TensorDataset(test.tensors[0]), batch_size=256))


# ---- token classification ------------------------------------------------------------------
class TokenTagger(nn.Module):
    """forward(input_ids) → (B, T, 3) logits per token: word start, word piece (##), or
    punctuation — tags read off the WordPiece tokenization of real English sentences."""

    def __init__(self, vocab: int = 30522, dim: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.conv = nn.Conv1d(dim, hidden, 3, padding=1)
        self.head = nn.Linear(hidden, 3)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        h = self.conv(self.embed(input_ids).transpose(1, 2)).relu()  # (B, hidden, T)
        return self.head(h.transpose(1, 2))  # (B, T, 3)


class _Tagged(Dataset):
    def __init__(self, ids: torch.Tensor, tags: torch.Tensor) -> None:
        self.ids, self.tags = ids, tags

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "labels": self.tags[i]}  # a dict batch


def token_tag_loaders(max_length: int = 32, sentences: int = 3000,
                      batch_size: int = 64) -> tuple[DataLoader, DataLoader]:
    """Docstring sentences (slimkit.data.text) tokenized by all-MiniLM-L6-v2's WordPiece
    tokenizer; padding and [CLS] / [SEP] positions are -100 (ignored)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_path())
    splits = text_splits()

    def tagged(texts) -> _Tagged:
        enc = tok(list(texts), max_length=max_length, truncation=True, padding="max_length",
                  return_tensors="pt")
        ids = enc["input_ids"]
        words = tok.convert_ids_to_tokens(ids.flatten().tolist())
        tags = torch.tensor([1 if w.startswith("##") else 2 if not w.isalnum() else 0
                             for w in words]).reshape(ids.shape)
        tags[(ids == tok.pad_token_id) | (ids == tok.cls_token_id) |
             (ids == tok.sep_token_id)] = -100
        return _Tagged(ids, tags)
    train = tagged(splits.calibration[:sentences])
    val = tagged(splits.evaluation[:sentences // 4])
    return (DataLoader(train, batch_size=batch_size, shuffle=True),
            DataLoader(val, batch_size=256))
