"""Backup and restore (analytics.backup): lossless round trips across backends, nothing partial.

A small generated DuckDB ledger with demo users and workflow writes (so the audit log, users,
write-off proposals and adjustments are non-empty) is exported once; each test restores it into a
fresh ledger on DuckDB, SQLite and PostgreSQL and compares per-table checksums (tests/checksums.py,
computed independently of the backup module).
"""
from __future__ import annotations

import datetime as dt
import json
import zipfile

import pytest
import sqlalchemy as sa

from analytics import audit, auth, backup, db, generator, schema, workflow
from analytics.auth import PermissionDenied, User
from analytics.cli import main as cli_main
from analytics.errors import UserError
from tests.checksums import table_checksums

END = dt.date(2024, 6, 28)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """(engine URL, backup path, checksums) of a generated ledger with workflow writes and users."""
    tmp = tmp_path_factory.mktemp("backup_src")
    url = f"duckdb:///{tmp / 'src.duckdb'}"
    eng = db.connect(url)
    generator.generate(eng, customers=20, invoices=300, seed=11, end=END)
    auth.add_user(eng, "admin", "admin-demo", "admin")
    auth.add_user(eng, "manager", "manager-demo", "manager")
    with eng.connect() as conn:
        cust, coll = conn.execute(sa.select(schema.customers.c.id, schema.customers.c.collector_id)
                                  .where(schema.customers.c.collector_id.is_not(None)).limit(1)).one()
        inv = conn.execute(sa.select(schema.invoices.c.id).where(schema.invoices.c.customer_id == cust)
                           .order_by(schema.invoices.c.id).limit(1)).scalar()
    manager = User("manager", "manager")
    workflow.log_activity(eng, manager, cust, "note", outcome="’quoted’ \"note\"",
                          note="line1\nline2 — ünïcödé 💶 '; DROP TABLE invoices; --",
                          at=dt.datetime(2024, 6, 1, 9, 30, 1, 123456))
    workflow.log_activity(eng, User(coll.lower(), "collector", coll), cust, "call", outcome="no answer")
    sums = table_checksums(eng)
    path = tmp / "ledger.zip"
    manifest = backup.export_ledger(eng, path)
    eng.dispose()
    assert manifest["tables"]["audit_log"]["rows"] >= 4 and manifest["tables"]["users"]["rows"] == 2
    return {"url": url, "path": path, "sums": sums, "manifest": manifest, "customer": cust, "invoice": inv}


def test_manifest_lists_every_table_with_counts_and_checksums(source):
    m = source["manifest"]
    assert set(m["tables"]) == {t.name for t in schema.LEDGER_TABLES}
    for name, entry in m["tables"].items():
        assert entry["rows"] == source["sums"][name][0]
        assert len(entry["sha256"]) == 64 and len(entry["content_sha256"]) == 64
    with zipfile.ZipFile(source["path"]) as zf:
        assert sorted(zf.namelist()) == sorted([backup.MANIFEST] + [e["file"] for e in m["tables"].values()])


def test_round_trip_is_lossless_on_every_backend(source, engine):
    """Export from DuckDB, import into DuckDB / SQLite / PostgreSQL: every table's checksum equal."""
    result = backup.import_ledger(engine, source["path"])
    assert not result["replaced"]
    assert table_checksums(engine) == source["sums"]
    # The restored users still sign in (hashes restored byte for byte).
    assert auth.authenticate(engine, "admin", "admin-demo") == User("admin", "admin")
    # Sequences moved past the imported ids: a new write does not collide.
    with engine.connect() as conn:
        top_act = conn.execute(sa.select(sa.func.max(schema.activities.c.id))).scalar()
        top_audit = conn.execute(sa.select(sa.func.max(schema.audit_log.c.id))).scalar()
    new_id = workflow.log_activity(engine, User("manager", "manager"), source["customer"], "email")
    assert new_id > top_act
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.max(schema.audit_log.c.id))).scalar() > top_audit
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.activities)
                            .where(schema.activities.c.id == new_id)).scalar() == 1


def test_non_empty_database_is_refused_then_replaced(source, engine):
    backup.import_ledger(engine, source["path"])
    workflow.log_activity(engine, User("manager", "manager"), source["customer"], "email", note="after restore")
    before = table_checksums(engine)
    version_before = db.ledger_version(engine)
    with pytest.raises(UserError, match="not empty"):
        backup.import_ledger(engine, source["path"])
    assert table_checksums(engine) == before
    result = backup.import_ledger(engine, source["path"], replace=True)
    assert result["replaced"]
    after = table_checksums(engine)
    assert {k: v for k, v in after.items() if k not in ("ledger_meta", "audit_log")} == \
           {k: v for k, v in source["sums"].items() if k not in ("ledger_meta", "audit_log")}
    # The audit log is never emptied: the previous rows stay, the replacement is recorded after them.
    assert after["audit_log"][0] == before["audit_log"][0] + 1
    assert audit.audit_trail(engine, limit=1)["action"].tolist() == ["import_replace"]
    assert audit.verify_chain(engine).ok
    # The version moves forward so caches of the old ledger are not reused.
    assert db.ledger_version(engine) > version_before
    # And the restored ledger accepts new writes (sequences, triggers back in place).
    workflow.log_activity(engine, User("manager", "manager"), source["customer"], "email")


def test_corrupted_or_foreign_files_are_refused_and_nothing_is_written(source, duckdb_engine, tmp_path):
    before = table_checksums(duckdb_engine)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(source["path"]) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "invoices.parquet":
                data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
            zout.writestr(item, data)
    with pytest.raises(UserError, match="corrupted"):
        backup.import_ledger(duckdb_engine, bad)
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(source["path"].read_bytes()[: source["path"].stat().st_size // 2])
    with pytest.raises(UserError, match="not a ledger backup"):
        backup.import_ledger(duckdb_engine, truncated)
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format": "something-else"}))
    with pytest.raises(UserError, match="not a ledger backup"):
        backup.import_ledger(duckdb_engine, foreign)
    assert table_checksums(duckdb_engine) == before


def test_tampered_content_with_matching_file_hash_rolls_back(source, duckdb_engine, tmp_path):
    """A manifest whose content checksum disagrees with the data: the import is rolled back."""
    manifest = json.loads(json.dumps(source["manifest"]))
    manifest["tables"]["promises"]["content_sha256"] = "0" * 64
    bad = tmp_path / "tampered.zip"
    with zipfile.ZipFile(source["path"]) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = json.dumps(manifest).encode() if item.filename == backup.MANIFEST else zin.read(item)
            zout.writestr(item, data)
    before = table_checksums(duckdb_engine)
    with pytest.raises(UserError, match="differs from the backup"):
        backup.import_ledger(duckdb_engine, bad)
    assert table_checksums(duckdb_engine) == before


def test_only_allowed_roles_export_and_import(source, duckdb_engine, tmp_path):
    with pytest.raises(PermissionDenied):
        backup.import_ledger(duckdb_engine, source["path"], user=User("fin", "finance"))
    with pytest.raises(PermissionDenied):
        backup.export_ledger(duckdb_engine, tmp_path / "x.zip", user=User("c", "collector", "C01"))
    assert not (tmp_path / "x.zip").exists()
    backup.import_ledger(duckdb_engine, source["path"], user=User("root", "admin"))


def test_cli_export_then_import(source, tmp_path, capsys):
    out = tmp_path / "cli.zip"
    assert cli_main(["export", "--db", source["url"], str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["status"] == "exported" and printed["tables"]["invoices"]["rows"] > 0
    target = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    assert cli_main(["import", "--db", target, str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"]["invoices"] == printed["tables"]["invoices"]["rows"]
    # A second import into the now non-empty database: one line on stderr, exit 2.
    assert cli_main(["import", "--db", target, str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    eng = db.make_engine(target)
    assert table_checksums(eng) == source["sums"]
    eng.dispose()
