"""Sparse storage for pruned weights: CSR / CSC / BSR (torch.sparse), and N:M compression.

N:M keeps n of every m weights along the input dim; `nm_compress` stores the n values and
their positions inside each block (what semi-structured kernels consume), `nm_decompress`
restores the dense masked weight exactly.
"""

from __future__ import annotations

import torch

from slimkit.errors import ConfigError

FORMATS = ("csr", "csc", "bsr")


def density(w: torch.Tensor) -> float:
    return float((w != 0).float().mean())


def to_sparse(w: torch.Tensor, fmt: str = "csr", blocksize: int = 16) -> torch.Tensor:
    """A 2-D weight in the given torch.sparse layout (values stay exact)."""
    if w.dim() != 2:
        raise ConfigError(f"sparse formats take 2-D weights, got shape {tuple(w.shape)}")
    if fmt == "csr":
        return w.to_sparse_csr()
    if fmt == "csc":
        return w.to_sparse_csc()
    if fmt == "bsr":
        if w.shape[0] % blocksize or w.shape[1] % blocksize:
            raise ConfigError(f"bsr blocksize {blocksize} must divide the weight shape "
                              f"{tuple(w.shape)}")
        return w.to_sparse_bsr((blocksize, blocksize))
    raise ConfigError(f"format={fmt!r} is not allowed; choose one of {list(FORMATS)}")


def nm_compress(w: torch.Tensor, n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values (out, in·n/m), positions uint8 (out, in·n/m)) of an N:M-sparse 2-D weight."""
    out, cin = w.shape
    blocks = w.reshape(out, cin // m, m)
    nz = (blocks != 0).sum(-1)
    if int(nz.max()) > n:
        raise ConfigError(f"weight is not {n}:{m} sparse: a block of {m} has {int(nz.max())} "
                          f"non-zeros")
    # stable order: non-zeros first (by position), then zero padding to exactly n per block
    key = (blocks == 0).to(torch.int64) * m + torch.arange(m)
    pos = key.argsort(-1)[..., :n].sort(-1).values
    vals = blocks.gather(-1, pos)
    return vals.reshape(out, -1), pos.to(torch.uint8).reshape(out, -1)


def nm_decompress(values: torch.Tensor, positions: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The dense (out, in) weight back from `nm_compress`'s output."""
    out = values.shape[0]
    vals = values.reshape(out, -1, n)  # (out, blocks, n)
    pos = positions.to(torch.int64).reshape(out, -1, n)
    dense = torch.zeros(out, vals.shape[1], m, dtype=values.dtype)
    return dense.scatter_(-1, pos, vals).reshape(out, -1)
