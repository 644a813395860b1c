"""Running a benchmark script's tables one process each."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Sequence


def each_table_in_own_process(script: str, tables: Iterable[tuple[str, int]],
                              forward: Sequence[str] = ()) -> None:
    """Run `script --model M --batch B *forward` for every (M, B): a fresh process per table,
    so one model's allocator and thread-pool state cannot bias the next one's timings."""
    for name, batch in tables:
        subprocess.run([sys.executable, script, "--model", name, "--batch", str(batch),
                        *forward], check=True)
