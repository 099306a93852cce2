"""Start a throw-away PostgreSQL server for the test session (no mocks of the database).

Looks for the server binaries (``initdb``, ``pg_ctl``) in Debian's ``/usr/lib/postgresql/*/bin`` or on
PATH; if none are there it tries ``apt-get install postgresql`` (root only). The server listens on a
Unix socket in a private temp dir and on a free loopback port, with ``fsync=off`` for speed.
PostgreSQL refuses to run as root, so under root it runs as the ``postgres`` system user.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be found or installed here; the message says why."""


def _find_bindir() -> str | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return str(Path(candidates[0]).parent)
    initdb = shutil.which("initdb")
    return str(Path(initdb).resolve().parent) if initdb else None


def _try_install() -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=300)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
                   env=env, capture_output=True, timeout=600)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A PostgreSQL server in a temporary directory; ``url`` is a SQLAlchemy URL for its ``postgres`` db.

    Example
    -------
    >>> server = PostgresServer().start()   # doctest: +SKIP
    >>> server.create_database("t1")        # doctest: +SKIP
    'postgresql+psycopg://postgres@127.0.0.1:.../t1'
    >>> server.stop()                       # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.bindir = _find_bindir()
        self.tmp: str | None = None
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> "PostgresServer":
        if not self.bindir:
            _try_install()
            self.bindir = _find_bindir()
        if not self.bindir:
            raise PostgresUnavailable(
                "PostgreSQL server binaries not found and `apt-get install postgresql` was not possible "
                "(needs root and Debian's apt); PostgreSQL tests are skipped")
        self.tmp = tempfile.mkdtemp(prefix="ar-pg-")
        data = os.path.join(self.tmp, "data")
        if self._as_postgres:
            shutil.chown(self.tmp, "postgres", "postgres")
        try:
            self._run(f"{self.bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                      "--no-locale")
            opts = f"-p {self.port} -k {self.tmp} -c listen_addresses=127.0.0.1 -c fsync=off " \
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
            self._run(f"{self.bindir}/pg_ctl", "-D", data, "-o", opts, "-l", os.path.join(self.tmp, "log"),
                      "-w", "-t", "60", "start")
        except subprocess.CalledProcessError as exc:
            raise PostgresUnavailable(f"PostgreSQL failed to start: {exc.stderr or exc.stdout}") from exc
        return self

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.tmp and self.bindir:
            self._run(f"{self.bindir}/pg_ctl", "-D", os.path.join(self.tmp, "data"), "-m", "immediate", "stop",
                      check=False)
            time.sleep(0.2)
            shutil.rmtree(self.tmp, ignore_errors=True)
