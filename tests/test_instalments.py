"""Instalment terms against a hand-made schedule (DuckDB, SQLite, PostgreSQL).

Ledger (USD, customer A), as of D = 2024-03-31:
  S1  invoice 2024-01-01, 900.00 in three instalments of 300.00 due 01-31, 02-29, 03-31;
      R1 400.00 applied 03-10 and credit memo CM1 50.00 applied 03-20: 450.00 settled, 450.00 open.
      Earliest first: #1 300 paid in full; #2 150 of 300 paid -> 150 open, 31 days past due (31-60);
      #3 untouched -> 300 open, due today (Current).
  N1  invoice 2024-02-01 due 03-02, 200.00, no schedule: 29 days past due (1-30), as without instalments.
  P1  invoice 2024-03-01, 100.00 in portions 33.33 % / 33.33 % / 33.34 % due 03-15, 04-15, 05-15
      -> 33.33, 33.33, 33.34; #1 16 days past due (1-30), #2 and #3 Current.

Due-date aging: Current 300 + 33.33 + 33.34 = 366.67 (3 items); 1-30 200 + 33.33 = 233.33 (2);
  31-60 150.00 (1). Total 750.00 = the invoices' open amounts.
Document-date aging (days since the invoice date): S1 90 d -> 61-90 450.00 (2 open instalments);
  N1 59 d -> 31-60 200.00; P1 30 d -> 1-30 100.00 (3).
At 2024-02-15 (nothing paid): S1 #1 15 days past due -> 1-30 300.00; #2, #3 and N1 Current 800.00.
"""
import datetime as dt
import json

import pytest
import sqlalchemy as sa

from analytics import instalments, kpis, schema
from analytics.cli import main as cli_main
from analytics.errors import ValidationFailed
from analytics.ledger import LedgerFilter, open_items

D = dt.date
AS_OF = D(2024, 3, 31)
SCHEDULE = ("invoice_id,due_date,amount,portion\n"
            "S1,2024-03-31,300.00,\nS1,2024-01-31,300.00,\nS1,2024-02-29,300.00,\n"
            "P1,2024-03-15,,33.33\nP1,2024-04-15,,33.33\nP1,2024-05-15,,33.34%\n")


def build(engine):
    with engine.begin() as c:
        c.execute(schema.customers.insert(), [dict(id="A", name="A Inc", currency="USD")])
        c.execute(schema.invoices.insert(), [
            dict(id="S1", customer_id="A", doc_type="invoice", invoice_date=D(2024, 1, 1), due_date=D(2024, 3, 31),
                 amount_cents=90_000, currency="USD"),
            dict(id="N1", customer_id="A", doc_type="invoice", invoice_date=D(2024, 2, 1), due_date=D(2024, 3, 2),
                 amount_cents=20_000, currency="USD"),
            dict(id="P1", customer_id="A", doc_type="invoice", invoice_date=D(2024, 3, 1), due_date=D(2024, 5, 15),
                 amount_cents=10_000, currency="USD"),
            dict(id="CM1", customer_id="A", doc_type="credit_memo", invoice_date=D(2024, 3, 20),
                 due_date=D(2024, 3, 20), amount_cents=-5_000, currency="USD")])
        c.execute(schema.receipts.insert(), [dict(id="R1", customer_id="A", receipt_date=D(2024, 3, 10),
                                                  amount_cents=40_000, currency="USD")])
        c.execute(schema.applications.insert(), [
            dict(receipt_id="R1", credit_memo_id=None, invoice_id="S1", amount_cents=40_000, applied_date=D(2024, 3, 10)),
            dict(receipt_id=None, credit_memo_id="CM1", invoice_id="S1", amount_cents=5_000, applied_date=D(2024, 3, 20))])
    return instalments.load_schedules(engine, SCHEDULE.encode())


def _buckets(frame):
    return {r.bucket: (int(r.open_cents), int(r.items)) for r in frame.itertuples() if r.items}


def test_instalment_aging_by_hand(engine):
    loaded = build(engine)
    assert (loaded.invoices, loaded.instalments, loaded.unchanged) == (2, 6, 0)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.invoice_instalments).order_by("invoice_id", "seq")).all()
        assert [(r.invoice_id, r.seq, r.due_date, r.amount_cents) for r in rows] == [
            ("P1", 1, D(2024, 3, 15), 3_333), ("P1", 2, D(2024, 4, 15), 3_333), ("P1", 3, D(2024, 5, 15), 3_334),
            ("S1", 1, D(2024, 1, 31), 30_000), ("S1", 2, D(2024, 2, 29), 30_000), ("S1", 3, D(2024, 3, 31), 30_000)]
        ag = kpis.aging(conn, AS_OF)
        assert _buckets(ag) == {"Current": (36_667, 3), "1-30": (23_333, 2), "31-60": (15_000, 1)}
        items = instalments.instalment_items(AS_OF)
        got = {(r.invoice_id, r.instalment): (int(r.open_cents), int(r.days_past_due))
               for r in conn.execute(sa.select(items))}
        assert got == {("S1", 2): (15_000, 31), ("S1", 3): (30_000, 0), ("N1", 0): (20_000, 29),
                       ("P1", 1): (3_333, 16), ("P1", 2): (3_333, -15), ("P1", 3): (3_334, -45)}
        # an invoice without a schedule is exactly its open item
        o = open_items(AS_OF)
        n1 = conn.execute(sa.select(o.c.open_cents, o.c.days_past_due).where(o.c.invoice_id == "N1")).one()
        assert tuple(n1) == got[("N1", 0)]
        doc = kpis.aging(conn, AS_OF, basis="document")
        assert _buckets(doc) == {"1-30": (10_000, 3), "31-60": (20_000, 1), "61-90": (45_000, 2)}
        early = kpis.aging(conn, D(2024, 2, 15), LedgerFilter(customers=("A",)))
        assert _buckets(early) == {"Current": (80_000, 3), "1-30": (30_000, 1)}  # S1 #2, #3 and N1 (due 03-02)
        wide = kpis.aging(conn, AS_OF, buckets=(0, 30))
        assert _buckets(wide) == {"Current": (36_667, 3), "1-30": (23_333, 2), "30+": (15_000, 1)}
        detail = kpis.aging_detail(conn, AS_OF, bucket="31-60")
        assert list(zip(detail.invoice_id, detail.due_date, detail.open_cents)) == [("S1", D(2024, 2, 29), 15_000)]


def test_schedule_file_checks_and_repeat(engine):
    build(engine)
    assert instalments.load_schedules(engine, SCHEDULE.encode()).unchanged == 2  # loading twice changes nothing
    bad = ("invoice_id,due_date,amount\n"
           "N1,2024-01-15,200.00\n"           # row 2: before the invoice date
           "X9,2024-04-01,10.00\n"            # row 3: unknown invoice
           "CM1,2024-04-01,50.00\n"           # row 4: a credit memo
           "S1,2024-05-01,900.00\n"           # row 5: S1 already has another schedule
           "P1,2024-04-01,abc\n")             # row 6: not a number
    with pytest.raises(ValidationFailed) as err:
        instalments.load_schedules(engine, bad.encode())
    assert [(e.row, e.column, e.value) for e in err.value.errors] == [
        (2, "due_date", "2024-01-15"), (3, "invoice_id", "X9"), (4, "invoice_id", "CM1"), (5, "invoice_id", "S1"),
        (6, "amount", "abc")]
    short = "invoice_id,due_date,amount\nN1,2024-03-01,100.00\nN1,2024-04-01,99.99\n"
    with pytest.raises(ValidationFailed, match="add up to 199.99, not the invoice amount 200.00"):
        instalments.load_schedules(engine, short.encode())
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.invoice_instalments)).scalar() == 6


def test_cli_basis_and_edges(engine, capsys, tmp_path):
    with engine.begin() as c:
        c.execute(schema.customers.insert(), [dict(id="A", name="A Inc", currency="USD")])
    url = engine.url.render_as_string(hide_password=False)
    build_engine_rows = tmp_path / "s.csv"
    build_engine_rows.write_text("invoice_id,due_date,amount\nX1,2024-01-01,1.00\n")
    assert cli_main(["load", "schedule", str(build_engine_rows), "--db", url]) == 2
    capsys.readouterr()
    with engine.begin() as c:
        c.execute(schema.invoices.insert(), [dict(id="X1", customer_id="A", doc_type="invoice",
                                                  invoice_date=D(2024, 1, 1), due_date=D(2024, 1, 1),
                                                  amount_cents=100, currency="USD")])
    assert cli_main(["load", "schedule", str(build_engine_rows), "--db", url]) == 0
    assert "1 invoices (1 instalments) added" in capsys.readouterr().out
    assert cli_main(["aging", "--as-of", "2024-03-31", "--basis", "document", "--edges", "0,60,90", "--json",
                     "--db", url]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(r["bucket"], r["open"]) for r in out["rows"]] == [("Current", 0.0), ("1-60", 0.0), ("61-90", 1.0),
                                                                 ("90+", 0.0)]
    assert cli_main(["aging", "--edges", "30,10", "--db", url]) == 2


def test_dso_trend_and_dunning_work_per_instalment(engine):
    """BPDSO's current AR and the aging history use the instalments; so does dunning.

    At D: AR 750.00, current (per instalment) 366.67; sales in (D - 90, D] = S1 is dated 01-01 (in: D - 90 =
    2024-01-01 is excluded, so S1 is out), N1 200 + P1 100 = 300.00 -> BPDSO = 366.67 / 300 x 90 = 110.00;
    without instalments current would be S1 450 + P1 100 = 550.00 (165.00).
    Dunning (grace 0): counted are N1 (29 d), S1 #2 (150.00, 31 d), P1 #1 (33.33, 16 d); the call step
    (31+ days, at least 50.00) is reached by S1 #2 alone: a call letter for 150.00, not for S1's 450.00.
    """
    from analytics import dunning, dunning_runs
    from tests.apptest_helpers import make_user

    build(engine)
    with engine.connect() as conn:
        snap = kpis.snapshot(conn, AS_OF)
        assert (snap["ar_total"], snap["current_total"], snap["credit_sales"], snap["bpdso"]) == (
            750.0, 366.67, 300.0, 110.0)
        trend = kpis.aging_trend(conn, [D(2024, 2, 15), AS_OF]).set_index(["as_of", "bucket"])["open_cents"]
        assert trend[(AS_OF, "31-60")] == 15_000 and trend[(D(2024, 2, 15), "1-30")] == 30_000
        acc = dunning.assess(dunning.account_items(conn, AS_OF))
        row = acc.iloc[0]
        assert (row.step, int(row.letter_cents)) == ("call", 15_000)
    plan = dunning_runs.run_dunning(engine, make_user("manager", username="boss"), AS_OF)
    assert list(plan["action"]) == ["send"]
    with engine.connect() as conn:
        items = conn.execute(sa.select(schema.dunning_notice_items.c.invoice_id,
                                       schema.dunning_notice_items.c.open_cents)).all()
    assert sorted(tuple(r) for r in items) == [("S1", 15_000)]


def test_statement_and_customer_360_list_the_open_instalments(engine, tmp_path):
    """March 2024 statement of A: brought forward at 02-29 S1 900.00 + N1 200.00 = 1,100.00; lines P1 +100.00,
    CM1 -50.00, R1 on S1 -400.00, CM1 on S1 -50.00 and CM1 used +50.00; carried forward 750.00, listed as
    S1 inst. 2 (150.00, due 02-29, 31 days, 31-60), N1 (200.00, 29 days), P1 inst. 1 (33.33, 16 days),
    S1 inst. 3 (300.00, due today), P1 inst. 2 and 3 (33.33, 33.34, not due): the Aging page's buckets."""
    import subprocess

    from analytics import statements
    from analytics.accounts import customer_instalments

    build(engine)
    st = statements.statement(engine, "A", D(2024, 3, 1), AS_OF)
    assert (st.brought_forward_cents, st.carried_forward_cents) == (110_000, 75_000)
    assert [(i["document"], i["due"], i["days_past_due"], i["bucket"], i["open_cents"]) for i in st.open_items] == [
        ("S1 inst. 2", D(2024, 2, 29), 31, "31-60", 15_000), ("N1", D(2024, 3, 2), 29, "1-30", 20_000),
        ("P1 inst. 1", D(2024, 3, 15), 16, "1-30", 3_333), ("S1 inst. 3", AS_OF, 0, "Current", 30_000),
        ("P1 inst. 2", D(2024, 4, 15), -15, "Current", 3_333), ("P1 inst. 3", D(2024, 5, 15), -45, "Current", 3_334)]
    assert {k: v for k, v in st.aging.items() if v} == {"Current": 36_667, "1-30": 23_333, "31-60": 15_000}
    with engine.connect() as conn:
        assert {r.bucket: int(r.open_cents) for r in kpis.aging(conn, AS_OF).itertuples() if r.items} == {
            k: v for k, v in st.aging.items() if v}
        c360 = customer_instalments(conn, "A", AS_OF)
    assert list(zip(c360.invoice_id, c360.instalment, c360.due_date, c360.open_cents, c360.days_past_due)) == [
        ("P1", 1, D(2024, 3, 15), 3_333, 16), ("P1", 2, D(2024, 4, 15), 3_333, -15),
        ("P1", 3, D(2024, 5, 15), 3_334, -45), ("S1", 2, D(2024, 2, 29), 15_000, 31), ("S1", 3, AS_OF, 30_000, 0)]
    out = tmp_path / "a.pdf"
    out.write_bytes(statements.render_pdf(st))
    try:
        text = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True,
                              check=True).stdout
    except FileNotFoundError:
        return  # pdftotext (poppler-utils) not installed: the statement data is checked above
    assert "S1 inst. 2" in text and "150.00" in text and "USD 750.00" in text
