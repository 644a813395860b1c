"""The training-loop hook interface, kept at the bottom of the package.

Techniques (pruning schedules, QAT freezing, NAS) implement these hooks; the Trainer, a layer
above them, calls them. Defining the base class here lets both sides import it downward."""

from __future__ import annotations

from typing import Any


class Callback:
    """Hooks for schedules that live outside the loop. `trainer` is a slimkit.train.Trainer
    (typed loosely so this module imports nothing above it)."""

    def on_train_start(self, trainer: Any) -> None: ...
    def on_step_end(self, trainer: Any) -> None: ...
    def on_epoch_end(self, trainer: Any) -> None: ...
    def on_train_end(self, trainer: Any) -> None: ...
