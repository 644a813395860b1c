"""The one way slimkit writes a file: temp file in the same directory → fsync → rename.

A crash, a full disk or Ctrl-C mid-write never leaves half a file under the real name, and an
earlier good file stays in place until the new one is complete.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from slimkit.errors import SlimkitError


class WriteError(SlimkitError, OSError):
    """A file could not be written (directory missing or not writable, disk full)."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temp path next to `path`; when the block ends without error the temp file is
    fsynced and renamed onto `path`, otherwise removed.

        with atomic_path("model.onnx") as tmp:
            onnx.save(proto, tmp)
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise WriteError(f"cannot write {path}: directory {path.parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror}") from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        raise WriteError(f"cannot write {path}: {e.strerror or e}") from e
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write bytes (or UTF-8 text) to `path` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return path
