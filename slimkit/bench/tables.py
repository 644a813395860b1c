"""Benchmark tables: each in its own process, and the candidates against the fastest anchor."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence

from slimkit.latency.machine import machine_line


def each_table_in_own_process(script: str, tables: Iterable[tuple[str, int]],
                              forward: Sequence[str] = ()) -> None:
    """Run `script --model M --batch B *forward` for every (M, B): a fresh process per table,
    so one model's allocator and thread-pool state cannot bias the next one's timings."""
    for name, batch in tables:
        subprocess.run([sys.executable, script, "--model", name, "--batch", str(batch),
                        *forward], check=True)


def print_vs_fastest_anchor(res, names: Sequence[str], n_anchors: int, title: str) -> dict:
    """Print `title`, then each candidate's median and its speed relative to the fastest of the
    first `n_anchors` rows of `res` (higher is faster); → {name: ratio}."""
    rows = {r.name: r for r in res.rows}
    best = min(res.rows[:n_anchors], key=lambda r: r.median_ms)
    print(f"\n## {title}\n{machine_line()}")
    print(f"{'candidate':<34}{'median ms':>10}{'vs ' + best.name[:24]:>30}")
    ratios = {}
    for n in names:
        ratios[n] = best.median_ms / rows[n].median_ms
        print(f"{n:<34}{rows[n].median_ms:>10.2f}{ratios[n]:>29.2f}×")
    return ratios


def table_main(doc: str, script: str, models: Iterable[str], tables: Iterable[tuple[str, int]],
               table: Callable[[str, int, int], None], rounds: int) -> None:
    """The command line of a per-(model, batch) benchmark: one table (--model, --batch), or
    --all of them, each in a fresh process."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", choices=sorted(models), default="resnet18")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--all", action="store_true", help="every table, each in its own process")
    a = ap.parse_args()
    if a.all:
        each_table_in_own_process(script, tables, ["--rounds", str(a.rounds)])
    else:
        table(a.model, a.batch, a.rounds)
