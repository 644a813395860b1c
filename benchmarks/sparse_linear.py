"""Break-even density of sparse kernels on this CPU: a 1024×1024 Linear, batch 1 and 64.

Dense nn.Linear (MKL/oneDNN sgemm) against SparseLinear on torch.sparse CSR and BSR(16×16)
at falling densities; each pair alternates calls (drift hits both), 2 threads, medians of 30.
Only torch runs here, so OpenMP threads keep their default (spinning) wait policy: with
OMP_WAIT_POLICY=PASSIVE each µs-scale sparse call paid ~60 µs of thread wake-up.
The break-even is the highest density at which sparse is faster; slimkit.sparse.sparsify uses
sparse kernels only below it (it measures each layer itself).
"""

from __future__ import annotations

import argparse

import torch

from slimkit.latency.machine import machine_line
from slimkit.sparse import SparseLinear
from slimkit.sparse.policy import random_sparse_linear, time_pair

DENSITIES = (0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005)


def main() -> None:
    print(machine_line(2))  # where this ran: CPU, ISA, runtime versions
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args()
    torch.set_num_threads(2)
    n = a.size
    for batch in (1, 64):
        x = torch.randn(batch, n)
        print(f"\n## {n}×{n} Linear, batch {batch} (median ms, 2 threads)")
        print(f"{'density':>8}{'dense':>9}{'CSR':>9}{'CSR speedup':>13}{'BSR16':>9}"
              f"{'BSR speedup':>13}")
        even = {"csr": None, "bsr": None}
        for d in DENSITIES:
            lin = random_sparse_linear(n, n, d)
            dense_ms, csr_ms = time_pair(lin, SparseLinear(lin, "csr"), x, a.runs)
            dense2_ms, bsr_ms = time_pair(lin, SparseLinear(lin, "bsr", 16), x, a.runs)
            print(f"{d:>8.3f}{dense_ms:>9.3f}{csr_ms:>9.3f}{dense_ms / csr_ms:>12.2f}×"
                  f"{bsr_ms:>9.3f}{dense2_ms / bsr_ms:>12.2f}×")
            for k, ok in (("csr", csr_ms < dense_ms), ("bsr", bsr_ms < dense2_ms)):
                if ok and even[k] is None:
                    even[k] = d
        print("break-even density (highest where sparse wins): " + ", ".join(
            f"{k.upper()} {'none ≥ 0.01' if v is None else f'{v:.2f}'}" for k, v in even.items()))
        print("(unstructured random sparsity; BSR zeroes whole random elements, not blocks, so "
              "its blocks are mostly non-empty — block-pruned weights favour it more)")
        block_table(n, x, a.runs)


def block_table(n: int, x: torch.Tensor, runs: int) -> None:
    """The same layer block-pruned (granularity='block': the smallest 16×16 / 32×32 tiles by
    L1 zeroed whole), so BSR skips every zero; CSR beside it on the same weights."""
    import slimkit as sk

    print(f"\n## {n}×{n} Linear block-pruned, batch {len(x)} (median ms, 2 threads)")
    print(f"{'density':>8}{'dense':>9}{'BSR16':>9}{'speedup':>9}{'BSR32':>9}{'speedup':>9}"
          f"{'CSR':>9}{'speedup':>9}")
    even: dict[str, float | None] = {"bsr16": None, "bsr32": None, "csr": None}
    for d in DENSITIES:
        torch.manual_seed(0)
        row, ms = [], {}
        for b in (16, 32):
            lin = sk.prune(torch.nn.Linear(n, n), sk.PruneConfig(
                granularity="block", ratio=1 - d, block=(b, b)), x)
            dense_ms, ms[f"bsr{b}"] = time_pair(lin, SparseLinear(lin, "bsr", b), x, runs)
            row.append(dense_ms)
            if b == 16:
                dense_c, ms["csr"] = time_pair(lin, SparseLinear(lin, "csr"), x, runs)
        dense_ms = min(row)
        print(f"{d:>8.3f}{dense_ms:>9.3f}{ms['bsr16']:>9.3f}{row[0] / ms['bsr16']:>8.2f}×"
              f"{ms['bsr32']:>9.3f}{row[1] / ms['bsr32']:>8.2f}×{ms['csr']:>9.3f}"
              f"{dense_c / ms['csr']:>8.2f}×")
        for k, ref in (("bsr16", row[0]), ("bsr32", row[1]), ("csr", dense_c)):
            if ms[k] < ref and even[k] is None:
                even[k] = d
    print("break-even density: " + ", ".join(
        f"{k.upper()} {'none ≥ 0.005' if v is None else f'{v:.2f}'}" for k, v in even.items()))


if __name__ == "__main__":
    main()
