"""The one way slimkit writes a file: temp file in the same directory → fsync → rename.

A crash, a full disk or Ctrl-C mid-write never leaves half a file under the real name, and an
earlier good file stays in place until the new one is complete. A process killed outright
(SIGKILL, power loss) cannot remove its temp file; the temp name carries the writer's pid, and
the next write of the same path on this machine removes the temp files of writers that are gone.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
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
    _remove_orphans(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                   suffix=".tmp")
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror}") from e
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; the file gets what open() would
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


def _remove_orphans(path: Path) -> None:
    """Remove `.NAME.PID.*.tmp` siblings of `path` (files or directories) whose writer
    process no longer runs."""
    for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = p.name[len(path.name) + 2:].partition(".")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """The process `pid` still runs (a live process of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write bytes (or UTF-8 text) to `path` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, replace: Callable[[Path], bool]) -> Iterator[Path]:
    """Yields an empty temp directory next to `path`; on success it takes `path`'s place.
    An existing `path` is replaced only if `replace(path)` says so (e.g. it is an earlier
    artifact); otherwise WriteError, and nothing is touched."""
    path = Path(path)
    if not path.parent.is_dir():
        raise WriteError(f"cannot write {path}: directory {path.parent} does not exist")
    if path.exists() and not replace(path):
        raise WriteError(f"{path} exists and is not a slimkit artifact: refusing to overwrite it")
    _remove_orphans(path)
    try:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                    suffix=".tmp"))
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror}") from e
    try:
        yield tmp
        for f in tmp.iterdir():
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, old / "previous")
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise WriteError(f"cannot write {path}: {e.strerror or e}") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
