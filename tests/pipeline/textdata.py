"""An unlabelled token data set for the encoder recipe test (tests.arch.zoo.bert_tiny)."""

import torch
from torch.utils.data import DataLoader, TensorDataset


class Tokens(TensorDataset):
    def __getitem__(self, i):
        return self.tensors[0][i]  # a bare tensor per sample: no label


def loaders(n: int = 96, length: int = 16):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 100, (n, length), generator=g)
    train, val = Tokens(ids[: n * 3 // 4]), Tokens(ids[n * 3 // 4:])
    return DataLoader(train, batch_size=16), DataLoader(val, batch_size=16)
