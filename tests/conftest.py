"""Shared fixtures: a fresh ledger database per test on each backend, and the shared public datasets.

``engine`` is parametrised over the embedded DuckDB file, SQLite and a real PostgreSQL server
started once per session by :mod:`tests.pg_server`. A test that should run on one backend only
takes ``duckdb_engine`` instead.
"""
from __future__ import annotations

import itertools
import shutil
import sys
import tempfile
from pathlib import Path

import os

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analytics import db  # noqa: E402

_EXIT_STATUS = pytest.StashKey[int]()  # pytest's verdict, read at the very end (pytest_unconfigure)
from tests.pg_server import PostgresServer, PostgresUnavailable  # noqa: E402

# CI replays the same examples every run (reproducible red/green); locally hypothesis explores at random.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

# The suite's ledgers are demo ledgers signed into with the README's demo passwords, as `make run`
# does; tests/test_signin.py turns demo mode off to test the forced password change.
os.environ.setdefault("AR_DEMO_MODE", "1")
# An empty ledger's sign-in screen writes a one-time first-administrator token: not into the repository.
os.environ.setdefault("AR_FIRST_ADMIN_TOKEN_FILE", os.path.join(tempfile.mkdtemp(prefix="ar_token_"), "first_admin_token"))

SHARED = ROOT.parent / "shared"
IBM_CSV = SHARED / "datasets" / "ibm_ar" / "WA_Fn-UseC_-Accounts-Receivable.csv"
BACKENDS = ("duckdb", "sqlite", "postgresql")
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    server = PostgresServer()
    try:
        server.start()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


def _make_url(backend: str, tmp_path: Path, request) -> str:
    if backend == "duckdb":
        return f"duckdb:///{tmp_path / 'ledger.duckdb'}"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    server = request.getfixturevalue("pg_server")
    return server.create_database(f"t{next(_counter)}")


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    """URL of a fresh, empty (not yet migrated) database on each backend."""
    return _make_url(request.param, tmp_path, request)


@pytest.fixture
def engine(db_url):
    """A migrated, empty ledger on each backend."""
    eng = db.connect(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def duckdb_engine(tmp_path):
    """A migrated, empty ledger on the embedded default database only."""
    eng = db.connect(f"duckdb:///{tmp_path / 'ledger.duckdb'}")
    yield eng
    eng.dispose()


@pytest.fixture
def ibm_csv() -> Path:
    if not IBM_CSV.exists():
        pytest.skip(f"shared dataset absent: {IBM_CSV}")
    return IBM_CSV


@pytest.fixture(scope="session")
def small_ledger_path(tmp_path_factory) -> Path:
    """A generated DuckDB ledger (80 customers, ~4,000 invoices, seed 7) with the demo users, built once."""
    from analytics import auth, generator

    path = tmp_path_factory.mktemp("small_ledger") / "small.duckdb"
    eng = db.connect(f"duckdb:///{path}")
    generator.generate(eng, customers=80, invoices=4000, seed=7)
    auth.create_demo_users(eng)
    eng.dispose()
    return path


@pytest.fixture(scope="session")
def small_ledger_url(small_ledger_path) -> str:
    """URL of the shared generated ledger. Read-only use: take ``small_ledger_copy`` to write."""
    return f"duckdb:///{small_ledger_path}"


@pytest.fixture
def small_ledger_copy(small_ledger_path, tmp_path) -> str:
    """URL of a private, writable copy of the generated ledger."""
    target = tmp_path / "small_copy.duckdb"
    shutil.copy(small_ledger_path, target)
    return f"duckdb:///{target}"


def pytest_collection_modifyitems(items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec and callspec.params.get("db_url") == "postgresql":
            item.add_marker(pytest.mark.postgres)


# ------------------------------------------------------------------------------------------------
# Exit: the suite's verdict, not DuckDB's finaliser
# ------------------------------------------------------------------------------------------------
def pytest_sessionfinish(session, exitstatus):
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Leave with pytest's own exit status once every report is written.

    DuckDB connections still referenced from AppTest's script threads are finalised during interpreter
    shutdown, and now and then the binding aborts there ("terminate called after throwing …", exit
    134) after every test passed. The exit handlers (``analytics.db`` closes idle DuckDB pools) run
    first; only the interpreter's final teardown is skipped.
    """
    import atexit

    status = config.stash.get(_EXIT_STATUS, None)
    if status is None:
        return
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
