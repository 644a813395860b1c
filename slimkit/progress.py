"""Progress bars (rich) for calibration, training, evaluation and export — on a terminal only.

Bars nest: a stage's bar and the training bar inside it share one live display (rich allows
one at a time), which disappears when the last bar closes. Off a terminal (CI, logs, pipes)
nothing is drawn unless asked.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator

_live = {"progress": None, "open": 0}


def _enabled(enabled: bool | None) -> bool:
    return sys.stderr.isatty() if enabled is None else enabled


class Bar:
    """A bar with a description, an optional total and free-form fields ('loss 0.12')."""

    def __init__(self, desc: str, total: int | None = None, enabled: bool | None = None,
                 completed: int = 0) -> None:
        self.task = None
        if not _enabled(enabled):
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        if _live["progress"] is None:
            _live["progress"] = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                console=Console(stderr=True), transient=True)
            _live["progress"].start()
        _live["open"] += 1
        self.task = _live["progress"].add_task(desc, total=total, completed=completed, info="")

    def update(self, n: int = 1, **fields) -> None:
        if self.task is not None:
            info = "  ".join(f"{k} {v}" for k, v in fields.items())
            kw = {"info": info} if fields else {}
            _live["progress"].update(self.task, advance=n, **kw)

    def close(self) -> None:
        if self.task is None:
            return
        _live["progress"].remove_task(self.task)
        self.task = None
        _live["open"] -= 1
        if _live["open"] == 0:
            _live["progress"].stop()
            _live["progress"] = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(items: Iterable, desc: str, total: int | None = None,
          enabled: bool | None = None) -> Iterator:
    """Iterate `items` with a bar (total from len() when it has one)."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with Bar(desc, total, enabled) as bar:
        for x in items:
            yield x
            bar.update()


def note(message: str) -> None:
    """A loud note on stderr (beside any bars): something a user must not miss."""
    if _live["progress"] is not None:
        _live["progress"].console.print(f"note: {message}")
    else:
        print(f"note: {message}", file=sys.stderr)
