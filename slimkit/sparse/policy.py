"""Use sparse kernels only where this CPU runs them faster than dense.

`break_even` times dense vs sparse for one shape over a range of densities (interleaved,
medians) and returns the highest density at which sparse still wins; `sparsify` swaps each
Linear whose own weight runs faster sparse at the given batch, and reports every decision.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from slimkit.graph.modules import set_submodule
from slimkit.record import ModelRecord, Step, rebuilds, record_of
from slimkit.sparse.formats import density
from slimkit.sparse.linear import SparseLinear


@dataclass
class Decision:
    layer: str
    density: float
    dense_ms: float
    sparse_ms: float

    @property
    def use_sparse(self) -> bool:
        return self.sparse_ms < self.dense_ms


def time_pair(dense: nn.Module, sparse: nn.Module, x: torch.Tensor, runs: int = 20,
              warmup: int = 3) -> tuple[float, float]:
    """Median ms of each, alternating calls so drift hits both alike."""
    td, ts = [], []
    with torch.inference_mode():
        for _ in range(warmup):
            dense(x), sparse(x)
        for _ in range(runs):
            for mod, acc in ((dense, td), (sparse, ts)):
                t = time.perf_counter()
                mod(x)
                acc.append((time.perf_counter() - t) * 1e3)
    return statistics.median(td), statistics.median(ts)


def random_sparse_linear(out: int, cin: int, d: float, seed: int = 0) -> nn.Linear:
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(cin, out)
    with torch.no_grad():
        lin.weight.mul_(torch.rand(lin.weight.shape, generator=g) < d)
    return lin


def break_even(out: int, cin: int, batch: int, densities=(0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01),
               fmt: str = "csr", runs: int = 20) -> tuple[float | None, list[Decision]]:
    """(highest density where sparse beats dense, or None; the measurements)."""
    x = torch.randn(batch, cin)
    rows, best = [], None
    for d in sorted(densities, reverse=True):
        lin = random_sparse_linear(out, cin, d)
        dense_ms, sparse_ms = time_pair(lin, SparseLinear(lin, fmt), x, runs)
        rows.append(Decision(f"{out}x{cin} b{batch}", d, dense_ms, sparse_ms))
        if sparse_ms < dense_ms and best is None:
            best = d
    return best, rows


def sparsify(model: nn.Module, batch: int, fmt: str = "csr", runs: int = 20,
             max_density: float = 0.5) -> tuple[nn.Module, list[Decision]]:
    """Swap Linear layers to SparseLinear where measured faster at `batch` (in place)."""
    decisions = []
    for name, m in list(model.named_modules()):
        if not isinstance(m, nn.Linear) or density(m.weight) > max_density:
            continue
        x = torch.randn(batch, m.in_features)
        sparse = SparseLinear(m, fmt)
        dense_ms, sparse_ms = time_pair(m, sparse, x, runs)
        d = Decision(name, density(m.weight), dense_ms, sparse_ms)
        decisions.append(d)
        if d.use_sparse:
            set_submodule(model, name, sparse)
    chosen = {d.layer: {"format": fmt} for d in decisions if d.use_sparse}
    if chosen:
        record_of(model).add("sparsify", {"layers": chosen, "batch": batch},
                             f"{len(chosen)} Linear layer(s) on {fmt.upper()} kernels")
    return model, decisions


@rebuilds("sparsify")
def _rebuild(model: nn.Module, step: Step, rec: ModelRecord) -> nn.Module:
    for name, how in step.config["layers"].items():
        lin = model.get_submodule(name)
        placeholder = nn.Linear(lin.in_features, lin.out_features, lin.bias is not None)
        with torch.no_grad():
            placeholder.weight.fill_(1.0)  # full pattern; the stored weight replaces it
        set_submodule(model, name, SparseLinear(placeholder, how["format"],
                                                how.get("blocksize", 16)))
    return model
