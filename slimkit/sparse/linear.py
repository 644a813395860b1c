"""SparseLinear: a Linear whose weight is stored and multiplied in a torch.sparse layout."""

from __future__ import annotations

import torch
from torch import nn

from slimkit.sparse.formats import to_sparse


class SparseLinear(nn.Module):
    """y = x Wᵀ + b with W in CSR / BSR. Same numbers as the dense layer (fp32 sums may differ
    in the last bits: the kernel adds in another order)."""

    def __init__(self, linear: nn.Linear, fmt: str = "csr", blocksize: int = 16) -> None:
        super().__init__()
        self.in_features, self.out_features, self.format = (linear.in_features,
                                                            linear.out_features, fmt)
        self.blocksize = blocksize
        # stored as Wᵀ-ready (out, in); sparse @ dense computes W xᵀ without densifying
        self.register_buffer("weight", to_sparse(linear.weight.detach(), fmt, blocksize))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(),
                                                                  requires_grad=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear, fmt: str = "csr", blocksize: int = 16):
        return cls(linear, fmt, blocksize)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a sparse weight's nnz differs from the placeholder's: take the stored tensor whole
        w = state_dict.get(prefix + "weight")
        if w is not None and w.layout == self.weight.layout and w.shape == self.weight.shape:
            self.weight = w.clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)  # (N, in)
        if flat.shape[0] == 1 and self.format == "csr":  # one row: the sparse mat-vec kernel
            y = torch.mv(self.weight, flat[0])[None]  # (1, out)
        else:  # the kernels read a contiguous (in, N); a strided view costs a slow path
            y = torch.sparse.mm(self.weight, flat.t().contiguous()).t()  # (N, out)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        nnz = self.weight.values().numel()
        return (f"{self.in_features}, {self.out_features}, format={self.format}, "
                f"density={nnz / (self.in_features * self.out_features):.3f}")
