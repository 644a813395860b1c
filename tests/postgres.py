"""A real PostgreSQL server in a temporary directory, for the search's storage tests and the
scale-out benchmark: Debian's `postgresql` package (initdb, pg_ctl), trust authentication on
127.0.0.1 and a free port, fsync off (a throwaway cluster). As root, the server runs as the
`postgres` user (PostgreSQL refuses to run as root).

    with postgres_server() as server:
        url = server.database("study1")   # postgresql://slimkit@127.0.0.1:PORT/study1
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "slimkit"


def pg_bin(name: str) -> str | None:
    """Path of a PostgreSQL server program, or None when the package is not installed."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                      key=lambda p: int(Path(p).parts[-3]))
    return versions[-1] if versions else None


def missing() -> str | None:
    """Why no server can start here, or None."""
    if pg_bin("initdb") is None or pg_bin("pg_ctl") is None:
        return "PostgreSQL's server programs (Debian package postgresql) are not installed"
    if os.geteuid() == 0 and _uid("postgres") is None:
        return "running as root and there is no 'postgres' user to run the server as"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the driver psycopg (slimkit[postgres]) is not installed"
    return None


def _uid(user: str) -> int | None:
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, root: Path) -> None:
        self.root, self.data, self.port = root, root / "data", _free_port()

    def _run(self, *cmd: str) -> None:
        if os.geteuid() == 0:  # the server refuses root: run its programs as postgres
            cmd = ("runuser", "-u", "postgres", "--", *cmd)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): "
                               f"{(r.stderr or r.stdout)[-1500:]}")

    def start(self) -> None:
        if os.geteuid() == 0:
            os.chown(self.root, _uid("postgres"), -1)
        self._run(pg_bin("initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                  str(self.root / "server.log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def database(self, name: str) -> str:
        """A new, empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"


@contextmanager
def postgres_server() -> Iterator[Server]:
    why = missing()
    if why:
        raise RuntimeError(why)
    root = Path(tempfile.mkdtemp(prefix="slimkit-pg-"))
    server = Server(root)
    try:
        server.start()
        yield server
    finally:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            server.stop()  # fails only when it never started: nothing to stop
        shutil.rmtree(root, ignore_errors=True)
