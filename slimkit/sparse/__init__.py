"""Sparse computation: storage formats, SparseLinear, and a measured use-it-or-not policy."""

from slimkit.sparse.formats import density, nm_compress, nm_decompress, to_sparse
from slimkit.sparse.linear import SparseLinear
from slimkit.sparse.policy import Decision, break_even, sparsify

__all__ = ["Decision", "SparseLinear", "break_even", "density", "nm_compress", "nm_decompress",
           "sparsify", "to_sparse"]
