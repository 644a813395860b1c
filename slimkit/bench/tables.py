"""Running a benchmark script's tables one process each."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence


def each_table_in_own_process(script: str, tables: Iterable[tuple[str, int]],
                              forward: Sequence[str] = ()) -> None:
    """Run `script --model M --batch B *forward` for every (M, B): a fresh process per table,
    so one model's allocator and thread-pool state cannot bias the next one's timings."""
    for name, batch in tables:
        subprocess.run([sys.executable, script, "--model", name, "--batch", str(batch),
                        *forward], check=True)


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
