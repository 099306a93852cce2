"""`make run-postgres`'s server: kept under a data directory, password sign-in, survives a restart."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from analytics import db, schema
from scripts.postgres_local import PostgresServer, PostgresUnavailable, main


def test_kept_server_needs_its_password_and_keeps_the_ledger():
    base = Path(tempfile.mkdtemp(prefix="ar-pg-kept-"))  # pytest's tmp_path is closed to the postgres user
    base.chmod(0o755)
    data = base / "pg"
    server = PostgresServer(data, None)
    try:
        server.start()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        assert oct((base / "pg.password").stat().st_mode & 0o777) == "0o600"
        url = server.create_database("ar", keep=True)
        engine = db.connect(url)  # migrates
        with engine.begin() as conn:
            db.bump_ledger_version(conn)
        engine.dispose()
        wrong = sa.create_engine(url.replace(server.password, "not-the-password"))
        with pytest.raises(sa.exc.OperationalError, match="password"):
            wrong.connect()
        server.stop()
        assert not server.is_running()
        # `up` again (what make run-postgres runs): same server, same database, nothing rebuilt
        assert main(["up", "--data", str(data), "--port", str(server.port)]) == 0
        assert server.is_running()
        again = db.connect(server.create_database("ar", keep=True))
        assert db.ledger_version(again) == 1
        with again.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(schema.invoices)).scalar() == 0
        again.dispose()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
