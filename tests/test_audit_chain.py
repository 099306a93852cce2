"""The audit log shows tampering (analytics.audit): one linear hash chain on DuckDB, SQLite and
PostgreSQL even with writers appending at once, `audit verify` naming the first broken row, triggers
installed by the migration, replacements recorded, and backups whose chain was edited refused.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import threading
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from analytics import audit, backup, db, generator, schema
from analytics.cli import main as cli_main
from analytics.errors import UserError


def _append(engine, n: int, actor: str = "ann") -> None:
    for i in range(n):
        audit.run_write(engine, lambda conn, i=i: audit.append_audit(conn, actor, "note", "customers", f"K{i}",
                                                                    None, {"i": i, "by": actor}))


def _rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(schema.audit_log).order_by(schema.audit_log.c.id))]


def _tamper(engine, sql: str, params: dict | None = None) -> None:
    """Change audit_log as somebody with DDL rights on the database would (triggers out of the way)."""
    with engine.begin() as conn:
        name = conn.dialect.name
        if name == "postgresql":
            conn.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        if name == "sqlite":
            conn.execute(sa.text("DROP TRIGGER audit_log_no_update"))
            conn.execute(sa.text("DROP TRIGGER audit_log_no_delete"))
        conn.execute(sa.text(sql), params or {})
        if name == "postgresql":
            conn.execute(sa.text("ALTER TABLE audit_log ENABLE TRIGGER USER"))
        for stmt in audit.append_only_ddl(name) if name == "sqlite" else []:
            conn.execute(sa.text(stmt))


def _verify_cli(url: str, capsys) -> tuple[int, dict]:
    code = cli_main(["audit", "verify", "--db", url, "--json"])
    return code, json.loads(capsys.readouterr().out)


# ------------------------------------------------------------------------------------------------
# The chain
# ------------------------------------------------------------------------------------------------
def test_concurrent_appends_keep_one_linear_chain(engine):
    """8 threads appending 10 rows each at the same time: 80 rows, each chained to the one before."""
    threads, errors = [], []

    def work(k):
        try:
            _append(engine, 10, actor=f"user{k}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    for k in range(8):
        threads.append(threading.Thread(target=work, args=(k,)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    rows = _rows(engine)
    assert len(rows) == 80
    assert rows[0]["prev_hash"] == audit.GENESIS
    assert [r["prev_hash"] for r in rows[1:]] == [r["row_hash"] for r in rows[:-1]]  # no fork
    report = audit.verify_chain(engine)
    assert report.ok and report.rows == 80 and report.head_hash == rows[-1]["row_hash"]


def test_workflow_writes_and_sign_ins_at_once_share_one_chain(engine, monkeypatch):
    """Money/work writes (workflow transactions) and sign-ins appending from 6 threads: one chain."""
    from argon2 import PasswordHasher

    from analytics import auth, workflow
    from analytics.auth import User

    monkeypatch.setattr(auth, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    with engine.begin() as conn:
        conn.execute(schema.collectors.insert().values(id="C1", name="Ann"))
        conn.execute(schema.customers.insert().values(id="K1", name="Kappa", collector_id="C1"))
    auth.add_user(engine, "ann", "ann-password-1", "collector", "C1")
    errors = []

    def log(k):
        try:
            for i in range(6):
                workflow.log_activity(engine, User("ann", "collector", "C1"), "K1", "call", outcome=f"t{k} #{i}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def sign(k):
        try:
            for _ in range(6):
                auth.sign_in(engine, "ann", "ann-password-1")
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=f, args=(k,)) for k in range(3) for f in (log, sign)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    actions = [r["action"] for r in _rows(engine)]
    # a try in progress counts as a failure until its password is checked, so a few may be asked to wait
    assert actions.count("log_activity") == 18 and actions.count("signin") + actions.count("signin_refused") == 18
    assert audit.verify_chain(engine).ok


def test_hash_covers_every_field_and_is_backend_independent(engine):
    at = dt.datetime(2024, 5, 1, 9, 30, 1, 123456)
    with engine.begin() as conn:
        audit.append_audit(conn, "ann", "note", "customers", "K1", {"a": "ü 💶"}, {"b": None}, at=at)
    row = _rows(engine)[0]
    # Same value on every backend: computed from the canonical text, not from the driver's types.
    assert row["row_hash"] == audit.row_hash(
        dict(logged_at=at, actor="ann", action="note", table_name="customers", row_id="K1",
             before='{"a": "\\u00fc \\ud83d\\udcb6"}', after='{"b": null}'), audit.GENESIS)
    for field in audit.HASHED_FIELDS[1:]:
        assert audit.row_hash({**row, field: "x"}, audit.GENESIS) != row["row_hash"], field


def test_verify_names_the_edited_deleted_or_cut_off_row(engine, capsys):
    _append(engine, 5)
    rows = _rows(engine)
    url = engine.url.render_as_string(hide_password=False)
    assert _verify_cli(url, capsys) == (0, audit.verify_chain(engine).as_dict())
    _tamper(engine, "UPDATE audit_log SET actor = 'mallory' WHERE id = :i", {"i": rows[2]["id"]})
    code, out = _verify_cli(url, capsys)
    assert code == 1 and out["broken_id"] == rows[2]["id"] and "row_hash" in out["problem"]
    assert "actor" in out["problem"]
    # Put it back, then delete a row in the middle: the next row no longer links.
    _tamper(engine, "UPDATE audit_log SET actor = 'ann' WHERE id = :i", {"i": rows[2]["id"]})
    assert audit.verify_chain(engine).ok
    _tamper(engine, "DELETE FROM audit_log WHERE id = :i", {"i": rows[1]["id"]})
    report = audit.verify_chain(engine)
    assert not report.ok and report.broken_id == rows[2]["id"] and "prev_hash" in report.problem


def test_cutting_off_the_end_is_caught_by_the_head(engine):
    _append(engine, 4)
    last = _rows(engine)[-1]
    _tamper(engine, "DELETE FROM audit_log WHERE id = :i", {"i": last["id"]})
    report = audit.verify_chain(engine)
    assert not report.ok and "removed from" in report.problem


def test_cli_prints_a_sentence_and_exit_code(engine, capsys):
    url = engine.url.render_as_string(hide_password=False)
    _append(engine, 2)
    assert cli_main(["audit", "verify", "--db", url]) == 0
    assert "audit log intact: 2 rows" in capsys.readouterr().out
    first = _rows(engine)[0]["id"]
    _tamper(engine, "UPDATE audit_log SET after = '{}' WHERE id = :i", {"i": first})
    assert cli_main(["audit", "verify", "--db", url]) == 1
    assert f"BROKEN at row {first}" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# Protection installed by the migration
# ------------------------------------------------------------------------------------------------
def test_append_only_triggers_exist_right_after_migrate(engine):
    """No write has happened yet: the database itself already refuses UPDATE/DELETE (not DuckDB)."""
    name = engine.dialect.name
    assert audit.protection_installed(engine) is (name != "duckdb")
    _append(engine, 1)
    if name == "duckdb":
        return  # no triggers: the chain is the protection (see test_verify_names_...)
    for stmt in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(sa.text(stmt))
    if name == "postgresql":
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(sa.text("TRUNCATE audit_log"))
    assert len(_rows(engine)) == 1


def _alembic(engine, target: str, action: str = "upgrade") -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, target)


def test_migration_0004_chains_existing_rows_and_installs_the_guard(db_url):
    """A 0003 ledger with audit rows (and the old first-write triggers) upgrades to a verified chain."""
    engine = db.make_engine(db_url)
    _alembic(engine, "0003")
    old = sa.table("audit_log", *[sa.column(c) for c in ("logged_at", "actor", "action", "table_name", "row_id",
                                                          "before", "after")])
    with engine.begin() as conn:
        for i in range(3):
            conn.execute(old.insert().values(logged_at=dt.datetime(2024, 1, 1, 9, i), actor="ann", action="note",
                                             table_name="customers", row_id=str(i), before=None, after="{}"))
        for stmt in audit.append_only_ddl(conn.dialect.name):  # what the old first write installed
            conn.execute(sa.text(stmt))
    engine.dispose()
    engine = db.connect(db_url)  # -> head
    try:
        rows = _rows(engine)
        assert len(rows) == 3 and all(r["row_hash"] for r in rows)
        report = audit.verify_chain(engine)
        assert report.ok and report.rows == 3
        assert audit.protection_installed(engine) is (engine.dialect.name != "duckdb")
        _append(engine, 1)
        assert audit.verify_chain(engine).rows == 4
        # schema.py matches the migration for the tables that are not ledger data
        for table in schema.SECURITY_TABLES:
            with engine.connect() as conn:
                cols = set(conn.execute(sa.text("SELECT * FROM " + table.name)).keys())
            assert cols == set(table.c.keys()), table.name
    finally:
        engine.dispose()


def test_migration_0004_downgrades_and_upgrades_again(db_url):
    engine = db.connect(db_url)
    _append(engine, 2)
    engine.dispose()
    engine = db.make_engine(db_url)
    try:
        _alembic(engine, "0003", action="downgrade")
        names = set(sa.inspect(engine).get_table_names()) if engine.dialect.name != "duckdb" else None
        if names is not None:
            assert "audit_head" not in names and "login_throttle" not in names
        _alembic(engine, "head")
        assert audit.verify_chain(engine).ok and audit.verify_chain(engine).rows == 2
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------------------
# Replacements are recorded and survive
# ------------------------------------------------------------------------------------------------
def test_generate_replace_is_audited_and_the_log_survives(engine):
    generator.generate(engine, customers=5, invoices=60, seed=3)
    _append(engine, 2)
    with engine.connect() as conn:
        activities = conn.execute(sa.select(sa.func.count()).select_from(schema.activities)).scalar()
    generator.generate(engine, customers=6, invoices=80, seed=4, replace=True, actor="ops")
    rows = _rows(engine)
    assert [r["actor"] for r in rows[:2]] == ["ann", "ann"]  # the earlier entries are still there
    entry = rows[-1]
    assert (entry["actor"], entry["action"], entry["table_name"]) == ("ops", "generate_replace", "ledger")
    before, after = json.loads(entry["before"])["rows"], json.loads(entry["after"])["rows"]
    assert before["activities"] == activities and before["customers"] == 5 and after["customers"] == 6
    assert audit.verify_chain(engine).ok


# ------------------------------------------------------------------------------------------------
# Backups carry the chain; an edited one is refused
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chained_backup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chain_backup")
    eng = db.connect(f"duckdb:///{tmp / 'src.duckdb'}")
    generator.generate(eng, customers=5, invoices=60, seed=5)
    _append(eng, 4)
    path = tmp / "ledger.zip"
    backup.export_ledger(eng, path)
    rows = _rows(eng)
    eng.dispose()
    return path, rows


def _edited_backup(src: Path, out: Path, scratch_url: str) -> int:
    """The attack from issue 15: edit audit_log.parquet, recompute every manifest checksum."""
    with zipfile.ZipFile(src) as zf:
        manifest = json.loads(zf.read(backup.MANIFEST))
        files = {n: zf.read(n) for n in zf.namelist()}
    original = pq.read_table(io.BytesIO(files["audit_log.parquet"]))
    frame = original.to_pandas()
    victim = int(frame["id"].iloc[1])
    frame.loc[frame.index[1], "actor"] = "nobody"
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, schema=original.schema, preserve_index=False), buf)
    files["audit_log.parquet"] = buf.getvalue()
    scratch = db.connect(scratch_url)
    with scratch.begin() as conn:
        db.bulk_insert(conn, schema.audit_log, frame)
        content = backup.table_checksum(conn, schema.audit_log)[1]
    scratch.dispose()
    manifest["tables"]["audit_log"].update(sha256=hashlib.sha256(files["audit_log.parquet"]).hexdigest(),
                                           content_sha256=content)
    files[backup.MANIFEST] = json.dumps(manifest).encode()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return victim


def test_backup_round_trip_keeps_the_chain(chained_backup, engine):
    path, rows = chained_backup
    result = backup.import_ledger(engine, path)
    assert result["audit"] == {"mode": "restored", "rows": len(rows)}
    assert [r["row_hash"] for r in _rows(engine)] == [r["row_hash"] for r in rows]
    assert audit.verify_chain(engine).ok
    _append(engine, 1)  # the chain continues from the restored head
    assert audit.verify_chain(engine).ok


def test_edited_backup_is_refused_and_force_is_audited(chained_backup, engine, tmp_path, capsys):
    path, rows = chained_backup
    bad = tmp_path / "edited.zip"
    victim = _edited_backup(path, bad, f"duckdb:///{tmp_path / 'scratch.duckdb'}")
    with pytest.raises(UserError, match=f"audit log in this backup was altered: row {victim}"):
        backup.import_ledger(engine, bad)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.invoices)).scalar() == 0
    url = engine.url.render_as_string(hide_password=False)
    assert cli_main(["import", "--db", url, str(bad)]) == 2
    assert "altered" in capsys.readouterr().err
    assert cli_main(["import", "--db", url, str(bad), "--force", "--json"]) == 0
    capsys.readouterr()
    log = _rows(engine)
    assert log[-1]["action"] == "import_forced" and log[-1]["actor"] == "cli"
    assert f"row {victim}" in json.loads(log[-1]["after"])["chain_problem"]
    assert len(log) == len(rows) + 1  # the backup's rows re-chained, then the entry
    assert audit.verify_chain(engine).ok  # the database's own chain stays whole


def test_replace_keeps_the_log_and_appends_foreign_history(chained_backup, engine):
    """Replacing with another database's backup: our log stays, theirs is appended, the swap recorded."""
    path, rows = chained_backup
    generator.generate(engine, customers=4, invoices=40, seed=9)
    _append(engine, 2, actor="bob")
    mine = _rows(engine)
    result = backup.import_ledger(engine, path, replace=True, actor="ops")
    log = _rows(engine)
    assert [r["row_hash"] for r in log[:len(mine)]] == [r["row_hash"] for r in mine]
    assert result["audit"] == {"mode": "appended", "rows": len(rows)}
    assert [r["actor"] for r in log[len(mine):-1]] == [r["actor"] for r in rows]
    entry = log[-1]
    assert (entry["action"], entry["actor"]) == ("import_replace", "ops")
    assert json.loads(entry["before"])["rows"]["customers"] == 4
    assert json.loads(entry["after"])["rows"]["customers"] == 5
    assert audit.verify_chain(engine).ok
    _append(engine, 1)  # ids continue after the appended rows (sequences moved past them)
    assert audit.verify_chain(engine).ok
