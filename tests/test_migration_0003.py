"""Migration 0003: customer_truth's floats and match_proposals.confidence are 8-byte on every backend.

On DuckDB the two tables are rebuilt (DuckDB cannot change a column's type under a CHECK constraint):
every row, id, constraint, index and the id sequence must survive the rebuild.
"""
import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from analytics import db, schema

FLOATS = ("mean_days_late", "sd_days_late", "drift_days_per_year", "default_probability",
          "partial_payment_rate", "dispute_rate")
NOW = dt.datetime(2025, 3, 1, 9, 30)


def _alembic(engine, action: str, target: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, target)


def _seed(conn, customers=("K1", "K2", "K3")) -> None:
    conn.execute(schema.collectors.insert().values(id="C1", name="Ann"))
    for k in customers:
        conn.execute(schema.customers.insert().values(id=k, name=f"Customer {k}", collector_id="C1"))
        conn.execute(schema.invoices.insert().values(id=f"I-{k}", customer_id=k, invoice_date=dt.date(2025, 1, 1),
                                                     due_date=dt.date(2025, 1, 31), amount_cents=10_000))
        conn.execute(schema.receipts.insert().values(id=f"R-{k}", customer_id=k, receipt_date=dt.date(2025, 2, 1),
                                                     amount_cents=10_000))


def _truth(customer_id: str, value: float, segment: str = "on_time") -> dict:
    return {"customer_id": customer_id, "segment": segment, **{c: value for c in FLOATS}}


def _proposal(k: str, confidence: float) -> dict:
    return dict(receipt_id=f"R-{k}", invoice_id=f"I-{k}", amount_cents=10_000, confidence=confidence,
                rule="exact_amount", created_at=NOW)


def _types(conn, table: str) -> dict[str, str]:
    return dict(conn.execute(sa.text("SELECT column_name, data_type FROM information_schema.columns "
                                     "WHERE table_name = :t"), {"t": table}).all())


def test_floats_round_trip_exactly(engine):
    """0.1 and 1/3 come back bit for bit from customer_truth and match_proposals on every backend."""
    with engine.begin() as conn:
        _seed(conn, ("K1", "K2"))
        conn.execute(schema.customer_truth.insert(), [_truth("K1", 0.1), _truth("K2", 1 / 3)])
        conn.execute(schema.match_proposals.insert(), [_proposal("K1", 0.1), _proposal("K2", 1 / 3)])
    with engine.connect() as conn:
        t = schema.customer_truth
        rows = {r[0]: tuple(r[1:]) for r in conn.execute(sa.select(t.c.customer_id, *[t.c[c] for c in FLOATS]))}
        assert rows == {"K1": (0.1,) * 6, "K2": (1 / 3,) * 6}
        m = schema.match_proposals
        got = dict(conn.execute(sa.select(m.c.receipt_id, m.c.confidence)).all())
        assert got == {"R-K1": 0.1, "R-K2": 1 / 3}
        assert conn.execute(sa.select(m.c.receipt_id).where(m.c.confidence == 0.1)).scalar() == "R-K1"


def _snapshot(conn) -> dict:
    out = {}
    for t in (schema.customer_truth, schema.match_proposals):
        out[t.name] = sorted(tuple(r) for r in conn.execute(sa.select(*t.c)).all())
    return out


def test_duckdb_upgrade_keeps_rows_ids_sequence_and_constraints(tmp_path):
    url = f"duckdb:///{tmp_path / 'old.duckdb'}"
    engine = db.make_engine(url)
    _alembic(engine, "upgrade", "0002")
    with engine.begin() as conn:
        _seed(conn)
        conn.execute(schema.customer_truth.insert(), [_truth("K1", 0.1), _truth("K2", 1 / 3, "defaulting"),
                                                      _truth("K3", -12.5, "chronic_late")])
        ids = [conn.execute(schema.match_proposals.insert().returning(schema.match_proposals.c.id)
                            .values(**_proposal(k, c))).scalar()
               for k, c in (("K1", 0.9), ("K2", 0.85), ("K3", 1 / 3), ("K1", 1.0))]
        conn.execute(schema.match_proposals.delete().where(schema.match_proposals.c.id == ids[1]))  # a gap
        conn.execute(schema.applications.insert().values(receipt_id="R-K1", invoice_id="I-K1", amount_cents=10_000,
                                                         applied_date=dt.date(2025, 2, 1), rule="exact_amount"))
        assert _types(conn, "match_proposals")["confidence"] == "FLOAT"
        assert conn.execute(sa.text("SELECT confidence FROM match_proposals WHERE id = :i"),
                            {"i": ids[0]}).scalar() != 0.9  # the 4-byte bug this migration fixes
        before = _snapshot(conn)
    engine.dispose()

    engine = db.connect(url)  # migrates 0002 -> 0003
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() >= "0003"
        assert set(_types(conn, "customer_truth")[c] for c in FLOATS) == {"DOUBLE"}
        assert _types(conn, "match_proposals")["confidence"] == "DOUBLE"
        after = _snapshot(conn)
        # every row and id kept; values are the same 4-byte floats, now read as their intended decimals
        assert [r[0] for r in after["match_proposals"]] == [r[0] for r in before["match_proposals"]] \
            == [ids[0], ids[2], ids[3]]
        assert [r[4] for r in after["match_proposals"]] == [0.9, 0.33333334, 1.0]
        assert [r[0] for r in after["customer_truth"]] == ["K1", "K2", "K3"]
        assert [r[2] for r in after["customer_truth"]] == [0.1, 0.33333334, -12.5]
        for old, new in zip(before["match_proposals"], after["match_proposals"]):
            assert old[:4] == new[:4] and old[5:] == new[5:]
            assert abs(old[4] - new[4]) < 1e-7
        for old, new in zip(before["customer_truth"], after["customer_truth"]):
            assert old[:2] == new[:2] and all(abs(a - b) < 1e-6 for a, b in zip(old[2:], new[2:]))
        # the sequence continues: a new proposal gets a fresh id, and keeps full precision
        new_id = conn.execute(schema.match_proposals.insert().returning(schema.match_proposals.c.id)
                              .values(**_proposal("K2", 0.1))).scalar()
        assert new_id == ids[-1] + 1
        assert conn.execute(sa.select(schema.match_proposals.c.confidence)
                            .where(schema.match_proposals.c.id == new_id)).scalar() == 0.1
        conn.execute(sa.text("INSERT INTO match_proposals (receipt_id, invoice_id, amount_cents, confidence, rule, "
                             "created_at) VALUES ('R-K3', 'I-K3', 5, 0.5, 'manual', :t)"), {"t": NOW})  # default id
        assert conn.execute(sa.text("SELECT max(id) FROM match_proposals")).scalar() == new_id + 1
        assert conn.execute(sa.text("SELECT count(*) FROM duckdb_indexes() "
                                    "WHERE index_name = 'ix_match_proposals_receipt'")).scalar() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.applications)).scalar() == 1
    bad = [
        schema.customer_truth.update().where(schema.customer_truth.c.customer_id == "K1").values(segment="bogus"),
        schema.customer_truth.insert().values(**_truth("K1", 0.5)),                        # primary key
        schema.customer_truth.insert().values(**_truth("nobody", 0.5)),                    # foreign key
        schema.match_proposals.insert().values(**_proposal("K1", 1.5)),                    # confidence range
        schema.match_proposals.insert().values(**{**_proposal("K1", 0.5), "amount_cents": 0}),
        schema.match_proposals.insert().values(**{**_proposal("K1", 0.5), "status": "maybe"}),
        schema.match_proposals.insert().values(**{**_proposal("K1", 0.5), "invoice_id": "nope"}),
        schema.match_proposals.insert().values(**{**_proposal("K1", 0.5), "id": ids[0]}),  # duplicate id
        schema.invoices.delete().where(schema.invoices.c.id == "I-K3"),                    # still referenced
    ]
    for stmt in bad:
        with pytest.raises(sa.exc.DBAPIError):
            with engine.begin() as conn:
                conn.execute(stmt)
    engine.dispose()


def test_duckdb_downgrade_and_upgrade_again(tmp_path):
    engine = db.connect(f"duckdb:///{tmp_path / 'l.duckdb'}")
    with engine.begin() as conn:
        _seed(conn, ("K1",))
        conn.execute(schema.customer_truth.insert().values(**_truth("K1", 0.1)))
        conn.execute(schema.match_proposals.insert().values(**_proposal("K1", 0.1)))
    _alembic(engine, "downgrade", "0002")
    with engine.connect() as conn:
        assert _types(conn, "match_proposals")["confidence"] == "FLOAT"
        assert conn.execute(sa.text("SELECT count(*) FROM match_proposals")).scalar() == 1
    _alembic(engine, "upgrade", "head")
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.match_proposals.c.confidence)).scalar() == 0.1
        assert conn.execute(sa.select(schema.customer_truth.c.dispute_rate)).scalar() == 0.1
    engine.dispose()


def test_duckdb_upgrade_refuses_when_a_table_references_them(tmp_path):
    """A table of the user's own pointing at match_proposals: a clear error, and the database stays at 0002."""
    engine = db.make_engine(f"duckdb:///{tmp_path / 'r.duckdb'}")
    _alembic(engine, "upgrade", "0002")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE my_notes (proposal_id INTEGER REFERENCES match_proposals(id))"))
    with pytest.raises(RuntimeError, match="my_notes reference it"):
        _alembic(engine, "upgrade", "head")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0002"
        assert _types(conn, "match_proposals")["confidence"] == "FLOAT"
    engine.dispose()


def test_backup_made_at_0002_imports_into_0003(tmp_path):
    """A backup exported before the upgrade (revision 0002) restores into an upgraded ledger; other
    revisions are still refused."""
    import json
    import zipfile

    from analytics import backup
    from analytics.errors import UserError

    old = db.make_engine(f"duckdb:///{tmp_path / 'old.duckdb'}")
    _alembic(old, "upgrade", "0002")
    with old.begin() as conn:
        _seed(conn, ("K1", "K2"))
        conn.execute(schema.customer_truth.insert(), [_truth("K1", 0.1), _truth("K2", 1 / 3)])
        conn.execute(schema.match_proposals.insert(), [_proposal("K1", 0.9), _proposal("K2", 0.85)])
        before = _snapshot(conn)
    path = tmp_path / "old.zip"
    assert backup.export_ledger(old, path)["schema_revision"] == "0002"
    old.dispose()
    new = db.connect(f"duckdb:///{tmp_path / 'new.duckdb'}")
    assert backup.import_ledger(new, path)["rows"]["match_proposals"] == 2
    with new.connect() as conn:
        assert _snapshot(conn) == before  # the same (4-byte) values, ids and rows
    manifest = json.loads(zipfile.ZipFile(path).read(backup.MANIFEST))
    manifest["schema_revision"] = "0001"
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(other, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, json.dumps(manifest) if name == backup.MANIFEST else src.read(name))
    with pytest.raises(UserError, match="schema revision 0001"):
        backup.import_ledger(db.connect(f"duckdb:///{tmp_path / 'third.duckdb'}"), other)
    new.dispose()
