"""A local PostgreSQL server from Debian's package: throw-away for the tests, kept under ``data/`` for
``make run-postgres``.

Finds the server binaries (``initdb``, ``pg_ctl``) in Debian's ``/usr/lib/postgresql/*/bin`` or on PATH;
if none are there it runs ``apt-get install postgresql`` (root only). PostgreSQL refuses to run as root,
so under root the server runs as the ``postgres`` system user.

* :class:`PostgresServer` ``()`` — the tests' server: a temporary directory, ``trust`` sign-in on
  loopback, ``fsync=off``; removed by :meth:`PostgresServer.stop`.
* :class:`PostgresServer` ``(data_dir=..., port=...)`` — a kept server: its data directory survives
  restarts, ``fsync`` stays on, and sign-in needs a password (``scram-sha-256``), generated on the first
  start into ``<data_dir>.password`` (mode 600).

Command line (what ``make run-postgres`` / ``make stop-postgres`` call)::

    python scripts/postgres_local.py up   --data data/postgres --port 5433 [--demo]   # prints the ledger URL
    python scripts/postgres_local.py url  --data data/postgres --port 5433
    python scripts/postgres_local.py stop --data data/postgres

``up`` initialises the data directory when it is empty, starts the server unless it runs already,
creates the ``ar`` database, migrates it, and with ``--demo`` fills an empty ledger with the demo ledger
and demo users (the same command as ``make run``'s ``data/demo.db``).
"""
from __future__ import annotations

import argparse
import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "data" / "postgres"
DEFAULT_PORT = 5433
DATABASE = "ar"
#: Settings of a kept server (``make run-postgres``): PostgreSQL's defaults (128MB shared buffers, 4MB
#: work_mem) make the KPI queries at a million invoices spill their hash joins to disk; and with parallel
#: workers each worker built its own copy of the settlements' hash table (the planner expects 200 groups
#: from the union of applications and adjustments, there are a million): aging_detail at 1M took over
#: 225 s in parallel on 2 busy cores, 7.3 s without.
KEPT_SETTINGS = ("-c shared_buffers=256MB -c work_mem=64MB -c effective_cache_size=1GB -c jit=off "
                 "-c max_parallel_workers_per_gather=0")


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
    """A PostgreSQL server; ``url`` is a SQLAlchemy URL for its ``postgres`` database.

    Parameters
    ----------
    data_dir : str or Path, optional
        Keep the server here (initialised on the first start, password sign-in). Default: a temporary
        directory removed by :meth:`stop` (the tests' server).
    port : int, optional
        Loopback port; default a free one.

    Example
    -------
    >>> server = PostgresServer().start()   # doctest: +SKIP
    >>> server.create_database("t1")        # doctest: +SKIP
    'postgresql+psycopg://postgres@127.0.0.1:.../t1'
    >>> server.stop()                       # doctest: +SKIP
    """

    def __init__(self, data_dir: str | Path | None = None, port: int | None = None) -> None:
        self.bindir = _find_bindir()
        self.kept = data_dir is not None
        self.tmp: str | None = None
        self.data = str(Path(data_dir).resolve()) if data_dir is not None else None
        self.port = port or _free_port()
        self._as_postgres = os.geteuid() == 0

    # ---------------------------------------------------------------------------------------------- running
    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)

    @property
    def password_file(self) -> Path | None:
        return Path(self.data + ".password") if self.kept else None

    @property
    def password(self) -> str | None:
        f = self.password_file
        return f.read_text().strip() if f is not None and f.exists() else None

    def _socket_dir(self) -> str:
        return self.data if self.kept else self.tmp

    def _own(self, path: str) -> None:
        if self._as_postgres:
            shutil.chown(path, "postgres", "postgres")

    def _initdb(self) -> None:
        os.makedirs(self.data, exist_ok=True)
        os.chmod(self.data, 0o700)
        self._own(self.data)
        if not self.kept:
            self._run(f"{self.bindir}/initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                      "--no-locale")
            return
        pw = self.password_file
        if not pw.exists():
            pw.write_text(secrets.token_urlsafe(24) + "\n")
            os.chmod(pw, 0o600)
        tmp = tempfile.mkdtemp(prefix="ar-pg-pw-")  # initdb (the server user) reads it; the data dir must be empty
        try:
            pwfile = os.path.join(tmp, "pw")
            Path(pwfile).write_text(self.password + "\n")
            self._own(tmp)
            self._own(pwfile)
            self._run(f"{self.bindir}/initdb", "-D", self.data, "-U", "postgres", "-A", "scram-sha-256",
                      f"--pwfile={pwfile}", "-E", "UTF8", "--no-locale")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def is_running(self) -> bool:
        if not self.bindir or not self.data or not os.path.exists(os.path.join(self.data, "PG_VERSION")):
            return False
        return self._run(f"{self.bindir}/pg_ctl", "-D", self.data, "status", check=False).returncode == 0

    def start(self) -> "PostgresServer":
        """Start the server (initialising its data directory first when empty); a kept server already
        running is left as it is."""
        if not self.bindir:
            _try_install()
            self.bindir = _find_bindir()
        if not self.bindir:
            raise PostgresUnavailable(
                "PostgreSQL server binaries not found and `apt-get install postgresql` was not possible "
                "(needs root and Debian's apt); PostgreSQL tests are skipped")
        if not self.kept:
            self.tmp = tempfile.mkdtemp(prefix="ar-pg-")
            self._own(self.tmp)
            self.data = os.path.join(self.tmp, "data")
        elif self.is_running():
            return self
        log = os.path.join(self._socket_dir(), "log") if not self.kept else self.data + ".log"
        try:
            if not os.path.exists(os.path.join(self.data, "PG_VERSION")):
                self._initdb()
            if self.kept and not os.path.exists(log):
                Path(log).touch()
                self._own(log)
            opts = f"-p {self.port} -k {self._socket_dir()} -c listen_addresses=127.0.0.1 -c max_connections=100"
            if not self.kept:  # throw-away: speed over durability
                opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            else:  # the dashboard's server: memory for the KPI queries' hash joins and sorts (defaults: 4MB)
                opts += f" {KEPT_SETTINGS}"
            self._run(f"{self.bindir}/pg_ctl", "-D", self.data, "-o", opts, "-l", log, "-w", "-t", "60", "start")
        except subprocess.CalledProcessError as exc:
            raise PostgresUnavailable(f"PostgreSQL failed to start: {exc.stderr or exc.stdout}") from exc
        return self

    def _libpq(self, dbname: str) -> str:
        pw = f" password={self.password}" if self.password else ""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}{pw}"

    def url_for(self, name: str) -> str:
        """SQLAlchemy URL of database ``name`` on this server (with the password of a kept server)."""
        auth = f"postgres:{self.password}" if self.password else "postgres"
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{name}"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def create_database(self, name: str, keep: bool = False) -> str:
        """Create an empty database (``keep=True``: leave an existing one as it is) and return its URL."""
        import psycopg

        with psycopg.connect(self._libpq("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists and not keep:
                conn.execute(f'DROP DATABASE "{name}"')
            if not exists or not keep:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def stop(self) -> None:
        """Stop the server; a throw-away server's directory is removed."""
        if self.data and self.bindir and os.path.exists(os.path.join(self.data, "PG_VERSION")):
            self._run(f"{self.bindir}/pg_ctl", "-D", self.data, "-m", "fast" if self.kept else "immediate",
                      "stop", check=False)
        if self.tmp:
            time.sleep(0.2)
            shutil.rmtree(self.tmp, ignore_errors=True)


def _demo_ledger(url: str) -> None:
    """Migrate the ledger; fill it with the demo ledger and demo users when it holds no invoice."""
    sys.path.insert(0, str(ROOT))
    import sqlalchemy as sa

    from analytics import db, schema

    engine = db.connect(url)
    with engine.connect() as conn:
        empty = conn.execute(sa.select(sa.func.count()).select_from(schema.invoices)).scalar() == 0
    engine.dispose()
    if empty:
        print("run-postgres: building the demo ledger (400 customers, 40,000 invoices, seed 42)…", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "analytics", "generate", "--customers", "400", "--invoices", "40000",
                        "--seed", "42", "--db", url, "--demo-users"], cwd=ROOT, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "url", "stop"))
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="data directory (default data/postgres)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"loopback port (default {DEFAULT_PORT})")
    parser.add_argument("--demo", action="store_true", help="up: fill an empty ledger with the demo ledger")
    args = parser.parse_args(argv)
    server = PostgresServer(args.data, args.port)
    if args.action == "stop":
        server.stop()
        return 0
    if args.action == "up":
        try:
            server.start()
        except PostgresUnavailable as exc:
            print(f"run-postgres: {exc}", file=sys.stderr)
            return 2
        url = server.create_database(DATABASE, keep=True)
        if args.demo:
            _demo_ledger(url)
        else:
            sys.path.insert(0, str(ROOT))
            from analytics import db
            db.connect(url).dispose()  # migrate
    print(server.url_for(DATABASE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
