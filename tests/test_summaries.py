"""The derived settlement summary (issue 18): kept in step by every money write, identical figures.

``item_settlements`` holds each item's settled total and last movement date; open amounts are read from it
(:func:`analytics.ledger.open_items`). On all three databases:

* after generation, product writes (cash applied, unapplied, a write-off, a deduction) and rows added
  around the product, the summary matches a full recomputation (``summaries.check``) and the open items at
  every date equal the definition computed from the movements alone (:func:`ledger.settled_parts`);
* KPIs (snapshot, aging, trends, roll rates, roll-forward) are identical with the summary and without it
  (an empty summary makes every query recompute from the movements);
* rows deleted around the product are found by ``check`` and repaired by the next write or by
  ``python -m analytics summaries rebuild``.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import cash_app, db, generator, kpis, ledger, schema, summaries, workflow
from analytics.auth import User
from analytics.cash_app import reports
from analytics.cli import main as cli

FIN = User("fin1", "finance")
MGR1, MGR2 = User("mgr1", "manager"), User("mgr2", "manager")


def _reference_open_items(conn, as_of: dt.date) -> pd.DataFrame:
    """Open items at ``as_of`` from the definition: amount + Σ settlements dated <= as_of (no summary)."""
    inv = schema.invoices
    frm, open_cents = inv, inv.c.amount_cents
    for part in ledger.settled_parts(as_of):
        frm = frm.outerjoin(part, part.c.item_id == inv.c.id)
        open_cents = open_cents + sa.func.coalesce(part.c.settled_cents, 0)
    stmt = (sa.select(inv.c.id.label("invoice_id"), open_cents.label("open_cents")).select_from(frm)
            .where(inv.c.invoice_date <= as_of, open_cents != 0).order_by(inv.c.id))
    return pd.DataFrame(conn.execute(stmt).all(), columns=["invoice_id", "open_cents"])


def _open_items(conn, as_of: dt.date) -> pd.DataFrame:
    oi = ledger.open_items(as_of)
    rows = conn.execute(sa.select(oi.c.invoice_id, oi.c.open_cents).order_by(oi.c.invoice_id)).all()
    return pd.DataFrame(rows, columns=["invoice_id", "open_cents"])


def _over(conn, dates) -> pd.DataFrame:
    o = ledger.open_items_over(dates)
    rows = conn.execute(sa.select(o.c.as_of, o.c.invoice_id, o.c.open_cents)
                        .order_by(o.c.as_of, o.c.invoice_id)).all()
    return pd.DataFrame(rows, columns=["as_of", "invoice_id", "open_cents"])


def _dates(conn) -> list[dt.date]:
    end = kpis.latest_date(conn)
    return [end - dt.timedelta(days=k) for k in (0, 1, 17, 45, 120, 400)]


def _assert_same_as_definition(engine) -> None:
    with engine.connect() as conn:
        assert ledger.summary_differences(conn).empty
        for d in _dates(conn):
            got, want = _open_items(conn, d), _reference_open_items(conn, d)
            pd.testing.assert_frame_equal(got.astype({"open_cents": "int64"}), want.astype({"open_cents": "int64"}))


def _empty_summary(engine) -> None:
    """Drop the summary's content: every query then recomputes from the movements (the full path)."""
    with engine.begin() as conn:
        conn.execute(schema.item_settlements.delete())
        conn.execute(schema.settlement_summary_state.delete())


def _figures(engine) -> dict:
    with engine.connect() as conn:
        end = kpis.latest_date(conn)
        months = kpis.last_month_ends(end, 6)
        flt = kpis.LedgerFilter(currencies=(kpis.main_currency(conn),))
        return {
            "snapshot": kpis.snapshot(conn, end, flt),
            "aging": kpis.aging(conn, end, flt),
            "aging_trend": kpis.aging_trend(conn, months, flt),
            "kpi_trend": kpis.kpi_trend(conn, months, flt),
            "roll_rates": kpis.roll_rates(conn, months, flt),
            "rollforward": reports.rollforward(conn, months[-2] + dt.timedelta(days=1), months[-1], flt),
        }


@pytest.fixture
def gen_ledger(engine):
    generator.generate(engine, customers=12, invoices=400, seed=7)
    return engine


def test_generated_ledger_summary_matches_definition(gen_ledger):
    with gen_ledger.connect() as conn:
        m = summaries.marks(conn)
        n_items = conn.execute(sa.select(sa.func.count()).select_from(ledger.item_life())).scalar()
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.item_settlements)).scalar() == n_items
    assert m is not None and m.applications_rows > 0
    _assert_same_as_definition(gen_ledger)


def test_kpis_identical_with_and_without_the_summary(gen_ledger):
    with_summary = _figures(gen_ledger)
    _empty_summary(gen_ledger)
    without = _figures(gen_ledger)
    assert with_summary.pop("snapshot") == without.pop("snapshot")
    for name, frame in with_summary.items():
        assert len(frame), name
        pd.testing.assert_frame_equal(frame, without[name], check_exact=True, obj=name)


def _open_invoice(engine) -> tuple[str, str, int, dt.date, str]:
    """An open invoice: its id, customer, open cents, the ledger's end and the invoice's currency."""
    with engine.connect() as conn:
        end = kpis.latest_date(conn)
        oi = ledger.open_items(end)
        row = conn.execute(sa.select(oi.c.invoice_id, oi.c.customer_id, oi.c.open_cents, oi.c.currency)
                           .where(oi.c.doc_type == "invoice", oi.c.open_cents > 10_000)
                           .order_by(oi.c.invoice_id)).first()
    return row[0], row[1], int(row[2]), end, row[3]


def _receipt(conn, rid: str, cid: str, day: dt.date, cents: int, currency: str) -> None:
    conn.execute(schema.receipts.insert().values(id=rid, customer_id=cid, receipt_date=day, amount_cents=cents,
                                                 currency=currency, method="wire"))


def test_every_money_write_keeps_the_summary(gen_ledger):
    engine = gen_ledger
    iid, cid, open_cents, end, currency = _open_invoice(engine)
    with engine.begin() as conn:
        _receipt(conn, "R-SUM", cid, end, 5_000, currency)
        db.bump_ledger_version(conn)
    cash_app.apply(engine, FIN, "R-SUM", {iid: 3_000}, applied_date=end)
    _assert_same_as_definition(engine)
    cash_app.unapply(engine, FIN, "R-SUM", iid, 1_000, applied_date=end)
    _assert_same_as_definition(engine)
    pid = workflow.propose_writeoff(engine, MGR1, iid, 2_000, "small balance", today=end)
    workflow.decide_writeoff(engine, MGR2, pid, True)
    _assert_same_as_definition(engine)
    with engine.connect() as conn:
        oi = ledger.open_items(max(end, dt.date.today()))  # the approval posts the write-off today
        got = int(conn.execute(sa.select(oi.c.open_cents).where(oi.c.invoice_id == iid)).scalar())
    assert got == open_cents - 3_000 + 1_000 - 2_000


def test_rows_added_around_the_product_count_at_once(gen_ledger):
    """An application inserted straight into the table (an ETL, a script) shows before any refresh."""
    engine = gen_ledger
    iid, cid, _open, end, currency = _open_invoice(engine)
    with engine.connect() as conn:
        before = summaries.marks(conn)
    rid = "R-AROUND"
    with engine.begin() as conn:  # no bump: the summary does not know these rows
        _receipt(conn, rid, cid, end - dt.timedelta(days=3), 1_234, currency)
        conn.execute(schema.applications.insert().values(receipt_id=rid, invoice_id=iid, amount_cents=1_234,
                                                         applied_date=end - dt.timedelta(days=3)))
    with engine.connect() as conn:
        assert summaries.marks(conn) == before
    _assert_same_as_definition(engine)
    with engine.begin() as conn:
        assert summaries.refresh(conn) == "items"
    with engine.connect() as conn:
        assert summaries.marks(conn).applications_id > before.applications_id
    _assert_same_as_definition(engine)


def test_deleted_rows_are_found_and_repaired(gen_ledger, capsys):
    engine = gen_ledger
    apps = schema.applications
    with engine.begin() as conn:
        victim = conn.execute(sa.select(apps.c.id, apps.c.invoice_id).order_by(apps.c.id)).first()
        conn.execute(apps.delete().where(apps.c.id == victim[0]))
    with engine.connect() as conn:
        wrong = ledger.summary_differences(conn)
    assert list(wrong.item_id) == [victim[1]] or victim[1] in set(wrong.item_id)
    url = engine.url.render_as_string(hide_password=False)
    assert cli(["summaries", "check", "--db", url]) == 1
    assert "differ from a full recomputation" in capsys.readouterr().out
    assert cli(["summaries", "rebuild", "--db", url]) == 0
    assert "settlement summary rebuilt" in capsys.readouterr().out
    assert cli(["summaries", "check", "--db", url]) == 0
    _assert_same_as_definition(engine)


def test_a_write_after_rows_were_removed_rebuilds(gen_ledger):
    engine = gen_ledger
    adj = schema.adjustments
    with engine.begin() as conn:
        first = conn.execute(sa.select(adj.c.id).order_by(adj.c.id)).scalar()
        if first is None:
            pytest.skip("the generated ledger has no adjustments")
        conn.execute(adj.delete().where(adj.c.id == first))
    with engine.begin() as conn:
        assert summaries.refresh(conn) == "rebuilt"
    _assert_same_as_definition(engine)
