"""The seeded synthetic ledger generator: determinism, ledger invariants on every backend, behaviour."""
from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
import sqlalchemy as sa

from analytics import db, generator, schema
from analytics.cli import main as cli_main
from analytics.errors import UserError
from analytics.ledger import open_items

END = dt.date(2025, 12, 31)
SMALL = dict(customers=30, invoices=1_200, seed=7, end=END, months=12)
TABLES = ("collectors", "customers", "customer_truth", "invoices", "receipts", "applications", "adjustments",
          "disputes", "promises", "activities", "receipt_truth", "import_batches", "ledger_meta")


def _norm(value):
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):  # the generator rounds to 4 decimals (DuckDB kept 4-byte floats before 0003)
        return repr(round(value, 4))
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def checksums(engine) -> dict[str, str]:
    """sha256 per table over every row, ordered by every column (loaded_at: wall clock, left out)."""
    out = {}
    with engine.connect() as c:
        for name in TABLES:
            t = schema.metadata.tables[name]
            cols = [col for col in t.c if col.name != "loaded_at"]
            rows = c.execute(sa.select(*cols).order_by(*[col.asc().nulls_first() for col in cols])).all()
            h = hashlib.sha256()
            for row in rows:
                h.update("|".join(_norm(v) for v in row).encode())
                h.update(b"\n")
            out[name] = f"{len(rows)}:{h.hexdigest()[:16]}"
    return out


def scalar(engine, stmt):
    with engine.connect() as c:
        return c.execute(stmt).scalar()


@pytest.fixture(scope="module")
def reference_checksums(tmp_path_factory):
    """Checksums of the SMALL ledger generated into a fresh DuckDB file."""
    eng = db.connect(f"duckdb:///{tmp_path_factory.mktemp('ref') / 'ref.duckdb'}")
    generator.generate(eng, **SMALL)
    sums = checksums(eng)
    eng.dispose()
    return sums


@pytest.fixture
def small(engine):
    summary = generator.generate(engine, **SMALL)
    return engine, summary


# ---------------------------------------------------------------------------------------------
# invariants, on DuckDB, SQLite and PostgreSQL
# ---------------------------------------------------------------------------------------------
def test_ledger_invariants(small):
    engine, summary = small
    inv, app, rec, adj = schema.invoices, schema.applications, schema.receipts, schema.adjustments
    assert summary["invoices"] == SMALL["invoices"] and summary["customers"] == SMALL["customers"]
    assert scalar(engine, sa.select(sa.func.count()).select_from(inv).where(inv.c.doc_type == "invoice")) == 1_200
    # applications to an item never exceed its amount
    to_item = (sa.select(app.c.invoice_id, sa.func.sum(app.c.amount_cents).label("s"))
               .group_by(app.c.invoice_id).subquery())
    over = sa.select(sa.func.count()).select_from(inv.join(to_item, to_item.c.invoice_id == inv.c.id)).where(
        to_item.c.s > inv.c.amount_cents)
    assert scalar(engine, over) == 0
    # credit memos are never consumed beyond their amount
    from_cm = (sa.select(app.c.credit_memo_id, sa.func.sum(app.c.amount_cents).label("s"))
               .where(app.c.credit_memo_id.is_not(None)).group_by(app.c.credit_memo_id).subquery())
    cm_join = inv.join(from_cm, from_cm.c.credit_memo_id == inv.c.id)
    assert scalar(engine, sa.select(sa.func.count()).select_from(cm_join).where(from_cm.c.s > -inv.c.amount_cents)) == 0
    # applications from a receipt never exceed the receipt
    from_r = (sa.select(app.c.receipt_id, sa.func.sum(app.c.amount_cents).label("s"))
              .where(app.c.receipt_id.is_not(None)).group_by(app.c.receipt_id).subquery())
    assert scalar(engine, sa.select(sa.func.count()).select_from(rec.join(from_r, from_r.c.receipt_id == rec.c.id))
                  .where(from_r.c.s > rec.c.amount_cents)) == 0
    # nothing after the end of the history
    for col in (inv.c.invoice_date, rec.c.receipt_date, app.c.applied_date, adj.c.adj_date,
                schema.disputes.c.opened_date, schema.disputes.c.resolved_date, schema.promises.c.made_on):
        assert scalar(engine, sa.select(sa.func.max(col))) <= END, col
    last = scalar(engine, sa.select(sa.func.max(schema.activities.c.occurred_at)))
    assert last < dt.datetime.combine(END + dt.timedelta(days=1), dt.time())
    assert scalar(engine, sa.select(sa.func.count()).select_from(inv).where(inv.c.due_date < inv.c.invoice_date)) == 0
    # open amounts at the end: >= 0 for invoices and debit memos, <= 0 for credit memos; an AR book remains
    oi = open_items(END)
    with engine.connect() as c:
        rows = c.execute(sa.select(oi.c.doc_type, oi.c.open_cents, oi.c.days_past_due)).all()
    assert all(r.open_cents > 0 for r in rows if r.doc_type != "credit_memo")
    assert all(r.open_cents < 0 for r in rows if r.doc_type == "credit_memo")
    assert any(r.days_past_due <= 0 for r in rows if r.doc_type == "invoice"), "current items"
    assert any(r.days_past_due > 30 for r in rows if r.doc_type == "invoice"), "overdue items"
    # every receipt has its true split, which adds up to the receipt
    rt = schema.receipt_truth
    split = sa.select(rt.c.receipt_id, sa.func.sum(rt.c.amount_cents).label("s")).group_by(rt.c.receipt_id).subquery()
    assert scalar(engine, sa.select(sa.func.count()).select_from(rec.outerjoin(split, split.c.receipt_id == rec.c.id))
                  .where(sa.or_(split.c.s.is_(None), split.c.s != rec.c.amount_cents))) == 0
    # provenance and cache invalidation
    assert db.ledger_version(engine) == 1
    assert scalar(engine, sa.select(schema.import_batches.c.source)) == "generator"
    assert scalar(engine, sa.select(sa.func.count()).select_from(inv).where(inv.c.import_batch_id.is_(None))) == 0


def test_byte_identical_on_every_backend(small, reference_checksums):
    """Same arguments, same ledger: a second run (DuckDB) and other databases (SQLite, PostgreSQL)
    hold exactly the rows of the reference run, table by table."""
    engine, _ = small
    assert checksums(engine) == reference_checksums


# ---------------------------------------------------------------------------------------------
# determinism and realism (DuckDB only)
# ---------------------------------------------------------------------------------------------
def test_seed_changes_the_ledger():
    a = generator.build_frames(customers=10, invoices=300, seed=3, end=END, months=6)
    b = generator.build_frames(customers=10, invoices=300, seed=4, end=END, months=6)
    assert not a["invoices"].equals(b["invoices"])


@pytest.mark.parametrize("customers, invoices, months", [(1, 1, 1), (1, 1, 24), (5, 5, 2), (3, 400, 120)])
def test_tiny_and_long_ledgers(customers, invoices, months):
    frames = generator.build_frames(customers=customers, invoices=invoices, seed=0, end=END, months=months)
    assert (frames["invoices"]["doc_type"] == "invoice").sum() == invoices
    assert len(frames["customers"]) == len(frames["customer_truth"]) == customers
    assert set(frames["receipt_truth"]["receipt_id"]) == set(frames["receipts"]["id"])


def test_build_frames_is_pure_and_never_uses_today():
    a = generator.build_frames(customers=10, invoices=300, seed=3, end=dt.date(2020, 6, 30), months=6)
    b = generator.build_frames(customers=10, invoices=300, seed=3, end=dt.date(2020, 6, 30), months=6)
    for key in a:
        assert a[key].equals(b[key]), key
    assert a["invoices"]["invoice_date"].min() >= dt.datetime(2020, 1, 1)
    assert a["receipts"]["receipt_date"].max() <= dt.datetime(2020, 6, 30)


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    eng = db.connect(f"duckdb:///{tmp_path_factory.mktemp('gen') / 'medium.duckdb'}")
    summary = generator.generate(eng, customers=150, invoices=12_000, seed=5, end=END, months=18)
    yield eng, summary
    eng.dispose()


def _per_segment(engine, sql: str) -> dict[str, float]:
    with engine.connect() as c:
        return {r[0]: r[1] for r in c.execute(sa.text(sql))}


def test_segments_behave_differently(medium):
    engine, _ = medium
    late = _per_segment(engine, """
        SELECT t.segment, AVG(CAST(r.receipt_date - i.due_date AS DOUBLE))
        FROM receipt_truth rt JOIN receipts r ON r.id = rt.receipt_id JOIN invoices i ON i.id = rt.invoice_id
        JOIN customer_truth t ON t.customer_id = i.customer_id GROUP BY t.segment""")
    assert late["early"] < late["on_time"] < late["chronic_late"]
    assert late["defaulting"] > late["on_time"]
    # deteriorating customers pay later in the second half of the history than in the first
    halves = _per_segment(engine, """
        SELECT CASE WHEN i.invoice_date < DATE '2025-04-01' THEN 'first' ELSE 'second' END,
               AVG(CAST(r.receipt_date - i.due_date AS DOUBLE))
        FROM receipt_truth rt JOIN receipts r ON r.id = rt.receipt_id JOIN invoices i ON i.id = rt.invoice_id
        JOIN customer_truth t ON t.customer_id = i.customer_id WHERE t.segment = 'deteriorating' GROUP BY 1""")
    assert halves["second"] > halves["first"] + 5
    # defaulting customers carry more overdue AR and write-offs than on-time ones (per customer)
    oi = open_items(END)
    with engine.connect() as c:
        overdue = dict(c.execute(
            sa.select(schema.customer_truth.c.segment,
                      sa.func.sum(oi.c.open_cents) / sa.func.count(sa.distinct(oi.c.customer_id)))
            .select_from(oi.join(schema.customer_truth, schema.customer_truth.c.customer_id == oi.c.customer_id))
            .where(oi.c.days_past_due > 30).group_by(schema.customer_truth.c.segment)).all())
    assert overdue["defaulting"] > overdue.get("on_time", 0)
    wo = _per_segment(engine, """
        SELECT t.segment, -SUM(a.amount_cents) FROM adjustments a JOIN invoices i ON i.id = a.invoice_id
        JOIN customer_truth t ON t.customer_id = i.customer_id WHERE a.kind = 'write_off' GROUP BY t.segment""")
    assert wo["defaulting"] > wo.get("on_time", 0)


def test_realistic_content(medium):
    engine, summary = medium
    with engine.connect() as c:
        q = lambda sql: c.execute(sa.text(sql)).all()  # noqa: E731
        assert {r[0] for r in q("SELECT DISTINCT currency FROM customers")} == {"USD", "EUR", "GBP"}
        assert {r[0] for r in q("SELECT DISTINCT region FROM customers")} == {"AMER", "EMEA", "APAC"}
        assert {r[0] for r in q("SELECT DISTINCT payment_terms_days FROM customers")} == {30, 45, 60}
        assert len(q("SELECT DISTINCT business_unit FROM customers")) >= 3
        assert q("SELECT count(*) FROM collectors")[0][0] == 8
        assert q("SELECT count(*) FROM customers WHERE collector_id IS NULL")[0][0] == 0
        # due dates follow the customer's terms (debit memos: 15 days)
        assert q("""SELECT count(*) FROM invoices i JOIN customers k ON k.id = i.customer_id
                    WHERE i.doc_type = 'invoice' AND i.due_date - i.invoice_date <> k.payment_terms_days""")[0][0] == 0
        assert q("SELECT count(*) FROM invoices WHERE id NOT SIMILAR TO '(INV|CM|DM)-[0-9]{7}'")[0][0] == 0
        assert {r[0] for r in q("SELECT DISTINCT method FROM receipts")} == {"check", "eft", "wire", "card"}
        assert {r[0] for r in q("SELECT DISTINCT kind FROM adjustments")} >= {"deduction", "write_off"}
        assert {r[0] for r in q("SELECT DISTINCT type FROM activities")} >= {"call", "email", "letter", "portal",
                                                                              "escalation"}
        assert len(q("SELECT DISTINCT reason_code FROM disputes")) == 5
        assert q("SELECT count(*) FROM disputes WHERE outcome IS NULL")[0][0] > 0
        assert q("SELECT count(*) FROM disputes WHERE outcome IS NOT NULL")[0][0] > 0
        # partial payments: invoices settled by two receipts; multi-invoice receipts
        assert q("SELECT count(*) FROM (SELECT invoice_id FROM receipt_truth GROUP BY 1 HAVING count(*) > 1)")[0][0] > 0
        assert q("SELECT count(*) FROM (SELECT receipt_id FROM receipt_truth GROUP BY 1 HAVING count(*) > 1)")[0][0] > 0
        # credit memos: some applied to an invoice, some left open
        assert q("SELECT count(*) FROM applications WHERE credit_memo_id IS NOT NULL")[0][0] > 0
        assert q("""SELECT count(*) FROM invoices i WHERE doc_type = 'credit_memo'
                    AND id NOT IN (SELECT credit_memo_id FROM applications
                                   WHERE credit_memo_id IS NOT NULL)""")[0][0] > 0
        # unapplied cash at the end, and receipts of unknown payers
        assert q("""SELECT count(*) FROM receipts r WHERE id NOT IN
                    (SELECT receipt_id FROM applications WHERE receipt_id IS NOT NULL)""")[0][0] > 0
        assert summary["unapplied_receipts"] > 0
        # month-end peak: the last 3 days of months carry far more than 3/30 of invoices
        share = q("""SELECT avg(CASE WHEN day(last_day(invoice_date)) - day(invoice_date) < 3 THEN 1.0 ELSE 0 END)
                     FROM invoices WHERE doc_type = 'invoice'""")[0][0]
        assert share > 0.15
        # promises: both kept and broken
        kept = q("""SELECT sum(CASE WHEN paid <= promised_date THEN 1 ELSE 0 END), count(*) FROM (
                      SELECT p.promised_date, (SELECT max(r.receipt_date) FROM receipt_truth rt
                         JOIN receipts r ON r.id = rt.receipt_id WHERE rt.invoice_id = p.invoice_id) AS paid
                      FROM promises p)""")[0]
        assert 0 < kept[0] < kept[1]


def test_remittance_text_variants(medium):
    engine, _ = medium
    with engine.connect() as c:
        rows = c.execute(sa.text("""
            SELECT r.remittance_ref, string_agg(rt.invoice_id, ',' ORDER BY rt.invoice_id)
            FROM receipts r JOIN receipt_truth rt ON rt.receipt_id = r.id GROUP BY r.id, r.remittance_ref""")).all()
    refs = [r[0] for r in rows]
    clean = sum(1 for ref, ids in rows if ref is not None and ref == ids)
    multi = sum(1 for ref in refs if ref and ref.startswith("Payment for INV-") and "," in ref)
    missing = sum(1 for ref in refs if not ref or "INV" not in ref and not ref[:1].isdigit())
    spaced = sum(1 for ref in refs if ref and ref.startswith("INV "))
    bare = sum(1 for ref in refs if ref and ref.isdigit())
    typo = sum(1 for ref, ids in rows if ref and ref.startswith("INV-") and "," not in ref and "," not in ids
               and ref != ids)
    assert clean > len(rows) * 0.4
    assert min(multi, missing, spaced, bare, typo) > 0, (multi, missing, spaced, bare, typo)


# ---------------------------------------------------------------------------------------------
# refusing to overwrite, --replace, CLI, bad arguments
# ---------------------------------------------------------------------------------------------
def test_refuses_existing_ledger_and_replace(duckdb_engine):
    generator.generate(duckdb_engine, customers=8, invoices=200, seed=1, end=END, months=6)
    before = checksums(duckdb_engine)
    with pytest.raises(UserError, match="--replace"):
        generator.generate(duckdb_engine, customers=8, invoices=200, seed=2, end=END, months=6)
    assert checksums(duckdb_engine) == before
    with duckdb_engine.begin() as c:  # a user tied to a collector survives a replace
        c.execute(schema.users.insert().values(username="u", password_hash="x", role="collector",
                                               collector_id="COL01", created_at=dt.datetime(2025, 1, 1)))
    summary = generator.generate(duckdb_engine, customers=9, invoices=250, seed=2, end=END, months=6, replace=True)
    assert summary["ledger_version"] == 2
    assert scalar(duckdb_engine, sa.select(sa.func.count()).select_from(schema.customers)) == 9
    assert scalar(duckdb_engine, sa.select(sa.func.count()).select_from(schema.import_batches)) == 2


@pytest.mark.parametrize("kwargs, message", [
    (dict(customers=-1), "customers must be at least 1"),
    (dict(customers=0), "customers must be at least 1"),
    (dict(customers=10, invoices=5), "at least the number of customers"),
    (dict(invoices=-3), "at least the number of customers"),
    (dict(seed=-1), "seed"),
    (dict(months=0), "months"),
    (dict(customers=2.5), "integer"),
])
def test_bad_arguments(kwargs, message):
    args = dict(customers=10, invoices=100, seed=1, months=6) | kwargs
    with pytest.raises(UserError, match=message):
        generator.build_frames(**args)


def test_cli(tmp_path, capsys):
    url = f"duckdb:///{tmp_path / 'cli.duckdb'}"
    argv = ["generate", "--customers", "6", "--invoices", "150", "--seed", "3", "--end", "2025-06-30",
            "--months", "6", "--db", url]
    assert cli_main(argv + ["--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["invoices"] == 150 and summary["end"] == "2025-06-30"
    assert cli_main(argv) == 2
    assert "--replace" in capsys.readouterr().err
    assert cli_main(argv + ["--replace", "--demo-users"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("generated 6 customers, 150 invoices") and out.count("\n") == 1
    assert cli_main(["generate", "--customers", "5", "--invoices", "2", "--db", url]) == 2
    assert "invoices (2) must be at least" in capsys.readouterr().err


def test_progress_callback():
    seen = []
    frames = generator.build_frames(customers=5, invoices=60, seed=1, end=END, months=3,
                                    progress=lambda f, msg: seen.append((f, msg)))
    assert frames["invoices"].shape[0] >= 60
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and 0 <= fractions[0] and fractions[-1] <= 1
