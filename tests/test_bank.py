"""Bank statements: the three formats read from hand-made fixtures, loading (idempotent, overlapping,
all-or-nothing), returns, matching from the bank line, suspense queue and hit rate — on all three databases."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from analytics import db, schema
from analytics.auth import User
from analytics.bank.loading import load_statement
from analytics.bank.parsers import parse
from analytics.cash_app.evaluation import statement_hit_rates
from analytics.cash_app.matching import suspense_queue
from analytics.cash_app.posting import run_matching
from analytics.errors import UserError

FIX = Path(__file__).parent / "fixtures" / "bank"
FILES = {"bai2": FIX / "statement.bai2", "mt940": FIX / "statement.mt940", "camt053": FIX / "statement.camt053.xml"}
FIN = User("fin", "finance")
D = dt.date


def _ledger(engine):
    """Globex owes INV-0000101 + INV-0000102 (= 1,250.00); Initech owes 6,311.25 and once paid from GB82…"""
    with engine.begin() as c:
        db.bulk_insert(c, schema.customers, [
            dict(id="C1", name="Globex Corporation", currency="USD"),
            dict(id="C2", name="Initrode Holdings", currency="USD"),  # the bank says "Initech LLC": account only
            dict(id="C3", name="Hooli", currency="USD")])
        db.bulk_insert(c, schema.invoices, [
            dict(id="INV-0000101", customer_id="C1", invoice_date=D(2026, 10, 1), due_date=D(2026, 10, 31),
                 amount_cents=40000, currency="USD"),
            dict(id="INV-0000102", customer_id="C1", invoice_date=D(2026, 10, 2), due_date=D(2026, 11, 1),
                 amount_cents=85000, currency="USD"),
            dict(id="INV-0000201", customer_id="C2", invoice_date=D(2026, 10, 3), due_date=D(2026, 11, 2),
                 amount_cents=631125, currency="USD"),
            dict(id="INV-0000300", customer_id="C2", invoice_date=D(2026, 9, 1), due_date=D(2026, 9, 30),
                 amount_cents=10000, currency="USD")])
        db.bulk_insert(c, schema.receipts, [
            dict(id="R-OLD", customer_id="C2", receipt_date=D(2026, 9, 30), amount_cents=10000, currency="USD",
                 method="wire", payer_account="GB82WEST12345698765432")])
        db.bulk_insert(c, schema.applications, [
            dict(receipt_id="R-OLD", invoice_id="INV-0000300", amount_cents=10000, applied_date=D(2026, 9, 30),
                 source="import")])


def _counts(engine) -> dict:
    with engine.connect() as c:
        return {t.name: c.execute(sa.select(sa.func.count()).select_from(t)).scalar()
                for t in (schema.receipts, schema.bank_lines, schema.bank_statements, schema.applications,
                          schema.import_batches)}


@pytest.mark.parametrize("fmt", list(FILES))
def test_fixture_statements_read_the_same_in_every_format(fmt):
    lines = parse(FILES[fmt].read_bytes(), None, FILES[fmt].name).lines
    assert [ln.direction for ln in lines] == ["credit", "credit", "credit", "debit", "return"]
    assert [ln.amount_cents for ln in lines] == [125000, 631125, 50000, 1500, 125000]
    assert [ln.value_date for ln in lines] == [D(2026, 11, 2), D(2026, 11, 1)] + [D(2026, 11, 2)] * 3
    first = lines[0]
    assert (first.payer_name, first.payer_account, first.bank_reference, first.remittance_text, first.currency) == \
        ("Globex Corporation", "DE89370400440532013000", "BR1102001", "INV-0000101 INV-0000102", "USD")
    assert lines[1].payer_account == "GB82WEST12345698765432"  # BAI2 writes it with spaces: normalised
    assert lines[2].payer_account is None and lines[2].payer_name == "Unknown Payer"
    assert lines[4].returned_reference == "BR1102001"


BAD = [
    ("bai2", lambda t: t.replace("16,195,631125,V,261101,", "16,195,63X125,V,261101,"), "line 5"),
    ("bai2", lambda t: t.replace("49,3809750,8/", "49,3809751,8/"), "line 10"),
    ("mt940", lambda t: t.replace(":61:2611021102C500,00", ":61:2611X21102C5X0,00"), "line 9"),
    ("mt940", lambda t: t.replace("GB82WEST12345698765432", "GB83WEST12345698765432"), "line 7"),
    ("camt053", lambda t: t.replace("<Amt Ccy=\"USD\">500.00</Amt>", "<Amt Ccy=\"USD\">5OO.00</Amt>"), "line 66"),
    ("camt053", lambda t: t.replace("</Ntry>\n      <Ntry>", "</Ntry>\n      <Ntry", 1), "line 4"),
]


@pytest.mark.parametrize("fmt,damage,where", BAD)
def test_a_malformed_file_is_refused_naming_the_line_and_nothing_changes(engine, fmt, damage, where):
    _ledger(engine)
    before = _counts(engine)
    bad = damage(FILES[fmt].read_text()).encode()
    with pytest.raises(UserError) as exc:
        load_statement(engine, bad, file_name=f"bad.{fmt}")
    assert where in str(exc.value) and "nothing was loaded" in str(exc.value)
    assert _counts(engine) == before


@pytest.mark.parametrize("fmt", list(FILES))
def test_load_twice_changes_nothing_and_an_overlap_adds_only_new_lines(engine, fmt):
    _ledger(engine)
    first = load_statement(engine, FILES[fmt])
    assert (first.receipts, first.debits, first.returns, first.returns_unmatched) == (3, 1, 1, 0)
    after = _counts(engine)
    again = load_statement(engine, FILES[fmt])
    assert (again.lines_new, again.lines_duplicate) == (0, 5) and _counts(engine) == after
    with engine.connect() as c:
        r = c.execute(sa.select(schema.receipts).where(schema.receipts.c.bank_reference == "BR1102002")).one()
        ret = c.execute(sa.select(schema.bank_lines.c.receipt_id).where(
            schema.bank_lines.c.direction == "return")).scalar()
        glob = c.execute(sa.select(schema.receipts.c.id).where(schema.receipts.c.bank_reference == "BR1102001")).scalar()
    assert (r.amount_cents, r.currency, r.receipt_date, r.payer_name, r.payer_account, r.remittance_ref,
            r.customer_id) == (631125, "USD", D(2026, 11, 1), "Initech LLC", "GB82WEST12345698765432",
                               "June invoices thank you", None)
    assert ret == glob  # the return names the receipt it reverses


def test_overlapping_statement_adds_only_its_new_line(engine):
    _ledger(engine)
    text = FILES["mt940"].read_text()
    head, tail = text.split(":61:2611021102D15,00")
    part = head + ":62F:C261102USD17811,25\n"
    assert load_statement(engine, part.encode(), file_name="part.mt940").receipts == 3
    whole = load_statement(engine, FILES["mt940"])
    assert (whole.lines_new, whole.lines_duplicate, whole.receipts, whole.debits, whole.returns) == (2, 3, 0, 1, 1)


def test_matching_from_the_bank_line_suspense_and_hit_rate(engine):
    _ledger(engine)
    text = FILES["camt053"].read_text()
    load_statement(engine, text.encode(), file_name="s.xml")
    result = run_matching(engine, FIN, as_of=D(2026, 11, 2))
    with engine.connect() as c:
        props = c.execute(sa.select(schema.match_proposals)).mappings().all()
        queue = suspense_queue(c, D(2026, 11, 9))
        rates = statement_hit_rates(c)
    # Globex's receipt was returned: never proposed. Initech's account was learned from R-OLD.
    by_inv = {p["invoice_id"]: p for p in props}
    assert set(by_inv) == {"INV-0000201"} and by_inv["INV-0000201"]["rule"] == "exact_amount"
    assert result["queued"] == 1
    assert list(queue["payer_name"]) == ["Unknown Payer"] and list(queue["age_days"]) == [7]
    row = rates.iloc[0]
    assert (row["receipts"], row["auto_applied"], row["proposed"], row["unmatched"], row["returned"]) == (3, 0, 1, 1, 1)
    assert row["hit_rate"] == 0.5


def test_a_payer_name_identifies_a_customer_when_no_account_is_known(engine):
    _ledger(engine)
    with engine.begin() as c:
        db.bulk_insert(c, schema.invoices, [dict(id="INV-0000400", customer_id="C3", invoice_date=D(2026, 10, 5),
                                                 due_date=D(2026, 11, 4), amount_cents=77700, currency="USD")])
    text = (":20:S\n:25:NL91ABNA0417164300\n:28C:1/1\n:60F:C261101USD0,00\n"
            ":61:2611021102C777,00NTRFNONREF//BR9\n:86:/NAME/HOOLI, INC./IBAN/FR1420041010050500013M02606\n"
            ":62F:C261102USD777,00\n")
    load_statement(engine, text.encode(), file_name="h.mt940")
    run_matching(engine, FIN, as_of=D(2026, 11, 2), apply_auto=False)
    with engine.connect() as c:
        props = c.execute(sa.select(schema.match_proposals.c.invoice_id, schema.match_proposals.c.rule)).all()
    assert [tuple(p) for p in props] == [("INV-0000400", "exact_amount")]  # the customer's, not "any customer"


def test_a_return_unapplies_the_cash_of_the_receipt_it_reverses(engine):
    _ledger(engine)
    text = FILES["mt940"].read_text()
    credit_only = text.split(":61:2611011102C6311,25")[0] + ":62F:C261102USD11250,00\n"
    load_statement(engine, credit_only.encode(), file_name="day1.mt940")
    res = run_matching(engine, FIN, as_of=D(2026, 11, 2))
    assert res["auto_applied"] == 2  # the remittance names both invoices and they tie: applied
    with engine.connect() as c:
        rates = statement_hit_rates(c)
    assert rates.iloc[0]["auto_applied"] == 1 and rates.iloc[0]["hit_rate"] == 1.0
    report = load_statement(engine, FILES["mt940"])
    assert report.returns == 1 and report.unapplied == 2
    with engine.connect() as c:
        net = c.execute(sa.select(sa.func.sum(schema.applications.c.amount_cents)).where(
            schema.applications.c.invoice_id.in_(["INV-0000101", "INV-0000102"]))).scalar()
    assert net == 0


def _short_receipt(engine):
    with engine.begin() as c:
        db.bulk_insert(c, schema.receipts, [
            dict(id="R-SHORT", customer_id=None, receipt_date=D(2026, 11, 3), amount_cents=120000, currency="USD",
                 method="wire", payer_account="DE89370400440532013000", payer_name="Globex Corporation",
                 bank_reference="BR1103001")])


ADVICE = "payer,invoice,amount,deduction,reason\nGlobex,INV-0000101,400.00,,\nGlobex,102,800.00,,DAMAGED\n"


@pytest.mark.parametrize("excel", [False, True])
def test_remittance_advice_splits_the_receipt_and_turns_the_short_payment_into_a_deduction(engine, excel):
    import io

    import pandas as pd

    from analytics.bank.remittance import apply_advice

    _ledger(engine)
    _short_receipt(engine)
    data = ADVICE.encode()
    if excel:
        buf = io.BytesIO()
        pd.read_csv(io.StringIO(ADVICE), dtype=str, keep_default_na=False).to_excel(buf, index=False)
        data = buf.getvalue()
    out = apply_advice(engine, FIN, "BR1103001", data, file_name="advice.xlsx" if excel else "advice.csv")
    assert (out["receipt_id"], out["customer_id"], out["applied_cents"], out["deductions_cents"]) == \
        ("R-SHORT", "C1", 120000, 5000)
    with engine.connect() as c:
        adj = c.execute(sa.select(schema.adjustments)).mappings().one()
        apps = c.execute(sa.select(schema.applications.c.invoice_id, schema.applications.c.amount_cents)
                         .where(schema.applications.c.receipt_id == "R-SHORT")
                         .order_by(schema.applications.c.invoice_id)).all()
        from analytics.cash_app.matching import learned_payers
        learned = learned_payers(c)
    assert (adj["invoice_id"], adj["amount_cents"], adj["kind"], adj["reason"]) == \
        ("INV-0000102", -5000, "deduction", "DAMAGED")
    assert [tuple(a) for a in apps] == [("INV-0000101", 40000), ("INV-0000102", 80000)]
    assert learned["DE89370400440532013000"] == "C1"  # the account now identifies Globex


@pytest.mark.parametrize("advice,message", [
    ("invoice,amount,deduction\nINV-0000101,400.00,\nINV-0000102,800.00,40.00\n", "row 3: a deduction"),
    ("invoice,amount\nINV-0000101,400.00\nINV-0000999,800.00\n", "row 3, column 'invoice'"),
    ("invoice,amount\nINV-0000101,4OO.00\n", "row 2, column 'amount' ('4OO.00')"),
    ("invoice,amount\nINV-0000201,100.00\n", "belongs to C2"),
])
def test_a_bad_remittance_advice_is_refused_and_nothing_moves(engine, advice, message):
    from analytics.bank.remittance import apply_advice

    _ledger(engine)
    _short_receipt(engine)
    with engine.begin() as c:  # the receipt identified: Globex's
        c.execute(schema.applications.insert().values(receipt_id="R-SHORT", invoice_id="INV-0000102",
                                                      amount_cents=100, applied_date=D(2026, 11, 3), source="manual"))
    before = _counts(engine)
    with pytest.raises(UserError) as exc:
        apply_advice(engine, FIN, "R-SHORT", advice.encode(), file_name="a.csv")
    assert message in str(exc.value)
    assert _counts(engine) == before


@pytest.mark.parametrize("fmt", list(FILES))
def test_the_generators_receipts_round_trip_through_every_format(tmp_path, fmt):
    """Receipts of a generated ledger, written as a statement and read back: the same lines."""
    from analytics.bank.writer import export_statement, receipt_lines
    from analytics.generator import generate

    engine = db.connect(f"sqlite:///{tmp_path / 'g.sqlite'}")
    generate(engine, customers=30, invoices=600, seed=5)
    out = tmp_path / f"r.{fmt}"
    n = export_statement(engine, fmt, str(out))
    with engine.connect() as c:
        want = receipt_lines(c)
    got = parse(out.read_bytes(), fmt, out.name).lines
    key = lambda ln: (ln.value_date, ln.currency, ln.bank_reference)  # noqa: E731
    assert n == len(want) == len(got) > 100
    for a, b in zip(sorted(want, key=key), sorted(got, key=key)):
        assert (a.amount_cents, a.payer_name, a.payer_account, a.remittance_text or None, a.direction) == \
            (b.amount_cents, b.payer_name, b.payer_account, b.remittance_text, b.direction)
    engine.dispose()


def synthetic_lines(n: int):
    """``n`` credit lines over 50 payers, three currencies and two years (also benchmarks/bench_bank.py)."""
    import random

    from analytics.bank.parsers import BankLine
    from analytics.bank.writer import customer_iban

    ibans = [customer_iban(f"C{k:04d}") for k in range(50)]
    rng = random.Random(1)
    return [BankLine(0, "", ("USD", "EUR", "GBP")[k % 3], D(2025, 1, 1) + dt.timedelta(days=k % 730), "credit",
                     rng.randint(1, 10**8), payer_name=f"Customer {k % 50}", payer_account=ibans[k % 50],
                     bank_reference=f"R{k:08d}", remittance_text=f"INV-{k:07d} and INV-{k + 1:07d}")
            for k in range(n)]


@pytest.mark.parametrize("fmt", list(FILES))
def test_many_statement_lines_round_trip(fmt):
    """5,000 lines written and read back exactly (the 100k-line timing is benchmarks/bench_bank.py)."""
    from analytics.bank.writer import statement_bytes

    lines = synthetic_lines(5_000)
    back = parse(statement_bytes(lines, fmt), fmt, "big").lines
    assert len(back) == 5_000 and sum(b.amount_cents for b in back) == sum(a.amount_cents for a in lines)
    assert {b.payer_account for b in back} == {a.payer_account for a in lines}
    assert back[7].remittance_text.startswith("INV-")


def test_cli_load_bank_and_the_bank_commands(tmp_path, capsys):
    import json

    from analytics.cli import main

    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    _ledger(db.connect(url))
    assert main(["load", "bank", str(FILES["bai2"]), "--db", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["receipts"] == 3
    bad = tmp_path / "bad.bai2"
    bad.write_text(FILES["bai2"].read_text().replace("16,195,631125,V,261101,", "16,195,63X125,V,261101,"))
    assert main(["load", "bank", str(bad), "--db", url]) == 2
    assert "line 5" in capsys.readouterr().err
    assert main(["cashapp", "match", "--apply", "--as-of", "2026-11-02", "--db", url]) == 0
    capsys.readouterr()
    assert main(["bank", "statements", "--json", "--db", url]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["proposed"] == 1 and rows[0]["unmatched"] == 1
    assert main(["bank", "suspense", "--as-of", "2026-11-09", "--json", "--db", url]) == 0
    assert [r["age_days"] for r in json.loads(capsys.readouterr().out)] == [7]
    advice = tmp_path / "advice.csv"
    advice.write_text("invoice,amount,deduction,reason\n201,6300.00,11.25,FREIGHT\n")
    assert main(["bank", "remittance", str(advice), "--receipt", "BR1102002", "--json", "--db", url]) == 0
    posted = json.loads(capsys.readouterr().out)
    assert (posted["customer_id"], posted["applied"], posted["deductions"]) == ("C2", 6300.0, 11.25)
    assert main(["bank", "remittance", str(advice), "--receipt", "BR1102002", "--db", url]) == 2  # nothing left
    assert "more than invoice INV-0000201" in capsys.readouterr().err
    out = tmp_path / "x.camt053"
    assert main(["bank", "export", "--format", "camt053", "--out", str(out), "--db", url]) == 0
    assert out.read_bytes().startswith(b"<?xml")


def test_a_backup_keeps_the_bank_statements_and_a_reload_after_restore_adds_nothing(engine, tmp_path):
    from analytics import backup
    from tests.checksums import table_checksums

    src = db.connect(f"duckdb:///{tmp_path / 'src.duckdb'}")
    _ledger(src)
    load_statement(src, FILES["camt053"])
    sums = table_checksums(src)
    path = tmp_path / "ledger.zip"
    backup.export_ledger(src, path)
    src.dispose()
    backup.import_ledger(engine, path)
    after = table_checksums(engine)
    for name in ("receipts", "bank_statements", "bank_lines", "applications"):
        assert after[name] == sums[name], name
    assert load_statement(engine, FILES["camt053"]).lines_new == 0
    assert load_statement(engine, FILES["bai2"]).lines_new == 5  # another account: its own lines
