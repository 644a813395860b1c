"""Files: atomic writes (every file slimkit writes goes through `atomic.py`) and, next, the
artifact (`sk.save` / `sk.load`)."""

from slimkit.io.atomic import atomic_path, write_atomic

__all__ = ["atomic_path", "write_atomic"]
