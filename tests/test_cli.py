"""The page commands (`kpis`, `aging`, `sla`, `collectors`, `disputes`, `promises`, `dunning`), `customer` and
`worklist` on the session's generated ledger: --json and --csv give the same numbers as the analytics function
the page calls, money is in currency units, and a bad option or filter value is one line with exit code 2."""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import zipfile

import pandas as pd
import pytest

from analytics import cli, db, dunning, kpis
from analytics.kpis import operations as ops
from analytics.kpis import sla
from analytics.ledger import NO_FILTER, LedgerFilter


@pytest.fixture(scope="module")
def ledger(small_ledger_url):
    """(url, connection, default as-of) on the shared generated ledger (read only)."""
    engine = db.connect(small_ledger_url)
    with engine.connect() as conn:
        yield small_ledger_url, conn, kpis.latest_date(conn)
    engine.dispose()


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _json(capsys, *argv):
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def _csv(capsys, *argv) -> pd.DataFrame:
    code, out, err = _run(capsys, *argv, "--csv")
    assert code == 0, err
    return pd.read_csv(io.StringIO(out), keep_default_na=False, na_values=[""])


def _cents(units) -> list[int]:
    return [round(float(u) * 100) for u in units]


def _period(as_of: dt.date) -> tuple[dt.date, dt.date]:
    return as_of - dt.timedelta(days=89), as_of


# ------------------------------------------------------------------------------------------------ kpis
def test_kpis_json_csv_and_text(ledger, capsys):
    url, conn, as_of = ledger
    snap = kpis.snapshot(conn, as_of, NO_FILTER)
    assert _json(capsys, "kpis", "--db", url) == json.loads(json.dumps(snap))  # default as-of: the latest date
    table = _csv(capsys, "kpis", "--db", url)
    assert table.set_index("metric").loc["AR total", "value"] == snap["ar_total"]
    code, text, _ = _run(capsys, "kpis", "--db", url)
    assert code == 0 and f"{snap['currency']} {snap['ar_total']:,.2f}" in text


# ------------------------------------------------------------------------------------------------ aging
def test_aging_by_bucket_customer_and_invoice(ledger, capsys):
    url, conn, as_of = ledger
    by_bucket = kpis.aging(conn, as_of)
    out = _json(capsys, "aging", "--db", url)
    assert out["as_of"] == as_of.isoformat() and out["currency"] == by_bucket.attrs["currency"]
    assert [r["bucket"] for r in out["rows"]] == list(by_bucket["bucket"])
    assert _cents(r["open"] for r in out["rows"]) == list(by_bucket["open_cents"])
    assert list(_csv(capsys, "aging", "--db", url)["items"]) == list(by_bucket["items"])

    detail = kpis.aging_detail(conn, as_of)
    inv = _json(capsys, "aging", "--db", url, "--by", "invoice")["rows"]
    assert [r["invoice_id"] for r in inv] == list(detail["invoice_id"])
    assert _cents(r["open"] for r in inv) == list(detail["open_cents"])
    assert set(inv[0]) >= {"customer_id", "invoice_id", "due_date", "days_past_due", "bucket", "open"}

    cust = _json(capsys, "aging", "--db", url, "--by", "customer")["rows"]
    per_customer = detail.groupby("customer_id")["open_cents"].sum()
    assert {r["customer_id"]: round(r["open"] * 100) for r in cust} == per_customer.to_dict()
    for r in cust:  # the buckets add up to the customer's total
        assert round(sum(r[b.label] for b in kpis.DEFAULT_BUCKETS) * 100) == round(r["open"] * 100)
    table = _csv(capsys, "aging", "--db", url, "--by", "customer", "--bucket", "120+")
    in_bucket = detail[detail["bucket"] == "120+"].groupby("customer_id")["open_cents"].sum()
    assert dict(zip(table["customer_id"], _cents(table["open"]))) == in_bucket.to_dict()


# ------------------------------------------------------------------------------------------------ sla
def test_sla_status_and_breaches(ledger, capsys, monkeypatch):
    monkeypatch.delenv("AR_SLA_FILE", raising=False)
    url, conn, as_of = ledger
    status = sla.sla_status(conn, as_of)
    breaches = sla.sla_breaches(conn, as_of, status=status)
    out = _json(capsys, "sla", "--db", url)
    assert [(r["metric"], r["status"]) for r in out["status"]] == list(zip(status["metric"], status["status"]))
    assert [r["actual"] for r in out["status"]] == [None if pd.isna(v) else v for v in status["actual"]]
    assert {m: len(rows) for m, rows in out["breaches"].items()} == {m: len(b) for m, b in breaches.items()}
    for metric, frame in breaches.items():
        assert _cents(r["amount"] for r in out["breaches"][metric]) == list(frame["amount_cents"])
    assert list(_csv(capsys, "sla", "--db", url)["status"]) == list(status["status"])
    listed = _csv(capsys, "sla", "--db", url, "--breaches")
    assert len(listed) == sum(len(b) for b in breaches.values())
    # the period setting reaches the targets
    out = _json(capsys, "sla", "--db", url, "--period-days", "30")
    assert out["period_start"] == (as_of - dt.timedelta(days=29)).isoformat()


def test_sla_targets_file(ledger, capsys, tmp_path):
    url, conn, as_of = ledger
    path = tmp_path / "sla.toml"
    path.write_text("[sla]\ndso_max = 1000\nptp_kept_min = false\n")
    out = _json(capsys, "sla", "--db", url, "--targets", str(path))
    status = {r["metric"]: r["status"] for r in out["status"]}
    assert status["dso"] == "met" and status["ptp_kept"] == "not defined"
    path.write_text("dso_max = 'soon'\n")
    code, _, err = _run(capsys, "sla", "--db", url, "--targets", str(path))
    assert code == 2 and "dso_max" in err


# ------------------------------------------------------------------------------------------------ collectors
def test_collectors_leaderboard_and_trend(ledger, capsys):
    url, conn, as_of = ledger
    start, end = _period(as_of)
    board = ops.collector_kpis(conn, start, end)
    out = _json(capsys, "collectors", "--db", url)
    assert (out["from"], out["to"]) == (start.isoformat(), end.isoformat())
    assert [r["collector_name"] for r in out["collectors"]] == list(board["collector_name"])
    assert _cents(r["collected"] for r in out["collectors"]) == list(board["collected_cents"])
    assert _cents(r["overdue"] for r in out["collectors"]) == list(board["overdue_cents"])
    table = _csv(capsys, "collectors", "--db", url, "--from", "2026-01-01", "--to", "2026-03-31")
    q1 = ops.collector_kpis(conn, dt.date(2026, 1, 1), dt.date(2026, 3, 31))
    assert _cents(table["collected"]) == list(q1["collected_cents"])
    assert list(table["accounts"]) == list(q1["accounts"])

    trend = _json(capsys, "collectors", "--db", url, "--trend", "--collector", "COL01")
    expected = ops.collector_trend(conn, dt.date(as_of.year - 1, as_of.month % 12 + 1, 1) if as_of.month < 12
                                   else dt.date(as_of.year, 1, 1), as_of, LedgerFilter(collectors=("COL01",)))
    assert _cents(r["ar"] for r in trend["trend"]) == list(expected["ar_cents"])
    assert len(trend["trend"]) == 12


# ------------------------------------------------------------------------------------------------ disputes, promises
def test_disputes(ledger, capsys):
    url, conn, as_of = ledger
    start, end = _period(as_of)
    stats = ops.dispute_stats(conn, start, end).iloc[0]
    out = _json(capsys, "disputes", "--db", url)
    assert out["stats"]["open_count"] == stats["open_count"]
    assert round(out["stats"]["open"] * 100) == stats["open_cents"]
    assert out["stats"]["resolved_count"] == stats["resolved_count"]
    open_list = ops.open_disputes(conn, as_of)
    assert [r["dispute_id"] for r in out["open"]] == list(open_list["dispute_id"])
    table = _csv(capsys, "disputes", "--db", url)
    assert list(table["dispute_id"]) == list(open_list["dispute_id"])
    assert _cents(table["amount"]) == list(open_list["amount_cents"])
    reasons = ops.disputes_by_reason(conn, start, end)
    table = _csv(capsys, "disputes", "--db", url, "--table", "by-reason")
    assert list(table["reason_code"]) == list(reasons["reason_code"])
    assert list(table["opened_count"]) == list(reasons["opened_count"])


def test_promises(ledger, capsys):
    url, conn, as_of = ledger
    start, end = dt.date(2026, 1, 1), dt.date(2026, 6, 30)
    stats = ops.promise_stats(conn, start, end).iloc[0]
    out = _json(capsys, "promises", "--db", url, "--from", "2026-01-01", "--to", "2026-06-30")
    assert (out["stats"]["made_count"], out["stats"]["kept_count"], out["stats"]["broken_count"]) == \
        (stats["made_count"], stats["kept_count"], stats["broken_count"])
    assert round(out["stats"]["promised"] * 100) == stats["promised_cents"]
    due = ops.promises_due(conn, as_of)
    assert [r["promise_id"] for r in out["due"]] == list(due["promise_id"])
    made = ops.promises_detail(conn, start, end)
    table = _csv(capsys, "promises", "--db", url, "--from", "2026-01-01", "--to", "2026-06-30", "--table", "made")
    assert list(table["promise_id"]) == list(made["promise_id"]) and list(table["status"]) == list(made["status"])
    assert _cents(table["amount"]) == list(made["amount_cents"])


# ------------------------------------------------------------------------------------------------ dunning
def test_dunning_list_letter_and_zip(ledger, capsys, tmp_path):
    url, conn, as_of = ledger
    cands = dunning.dunning_candidates(conn, as_of)
    out = _json(capsys, "dunning", "--db", url)
    assert [r["customer_id"] for r in out["accounts"]] == list(cands["customer_id"])
    assert _cents(r["overdue"] for r in out["accounts"]) == list(cands["overdue_cents"])
    assert sum(t["accounts"] for t in out["totals"]) == len(cands)
    held = dunning.dunning_candidates(conn, as_of, steps=["hold"])
    table = _csv(capsys, "dunning", "--db", url, "--step", "hold")
    assert list(table["customer_id"]) == list(held["customer_id"]) and set(table["step"]) <= {"hold"}
    table = _csv(capsys, "dunning", "--db", url, "--bucket", "120+")
    assert list(table["customer_id"]) == list(cands.loc[cands["bucket"] == "120+", "customer_id"])

    first = cands["customer_id"].iloc[0]
    code, text, _ = _run(capsys, "dunning", "--db", url, "--letter", first)
    assert code == 0 and text.rstrip("\n") == dunning.draft_letter(conn, first, as_of).rstrip("\n")
    archive = tmp_path / "letters.zip"
    code, _, err = _run(capsys, "dunning", "--db", url, "--step", "hold", "--zip", str(archive))
    assert code == 0 and str(archive) in err
    names = zipfile.ZipFile(archive).namelist()
    assert "index.csv" in names and len(names) == len(held) + 1


# ------------------------------------------------------------------------------------------------ customer, worklist
def test_customer_shows_nothing_after_its_as_of_date_in_currency_units(ledger, capsys):
    url, conn, _ = ledger
    day = dt.date(2026, 3, 31)
    cid = conn.exec_driver_sql("SELECT customer_id FROM activities GROUP BY customer_id "
                               "ORDER BY count(*) DESC, customer_id LIMIT 1").scalar()
    later = conn.exec_driver_sql(f"SELECT count(*) FROM activities WHERE customer_id = '{cid}' "
                                 "AND occurred_at >= '2026-04-01'").scalar()
    assert later > 0  # the account has history after the date, which must not show
    out = _json(capsys, "customer", cid, "--db", url, "--as-of", day.isoformat())
    assert all(r["when"][:10] <= day.isoformat() for r in out["timeline"])
    assert all(r["occurred_at"][:10] <= day.isoformat() for r in out["activities"])
    assert all(r["made_on"] <= day.isoformat() for r in out["promises"])
    assert all(r["opened_date"] <= day.isoformat() and (r["resolved_date"] or "") <= day.isoformat()
               for r in out["disputes"])
    items = pd.DataFrame(out["items"])
    assert "amount_cents" not in items and "open" in items  # currency units, the product's key convention
    oi = kpis.aging_detail(conn, day, LedgerFilter(customers=(cid,)))
    assert round(items["open"].sum() * 100) == int(oi["open_cents"].sum())
    code, text, _ = _run(capsys, "customer", cid, "--db", url, "--as-of", day.isoformat())
    cur = out["profile"]["currency"]
    assert code == 0 and f"open amount: {cur} {items['open'].sum():,.2f}" in text


def test_worklist_text_has_headers(ledger, capsys):
    url, _, _ = ledger
    code, text, err = _run(capsys, "worklist", "--db", url, "--collector", "COL01", "--limit", "3")
    assert code == 0, err
    lines = text.splitlines()
    assert lines[0].startswith("Worklist as of")
    assert lines[2].split()[:4] == ["#", "Customer", "Name", "Band"] and "Expected loss" in lines[2]
    table = _csv(capsys, "worklist", "--db", url, "--collector", "COL01", "--limit", "3")
    assert list(table["rank"]) == [1, 2, 3] and "expected_loss" in table


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("argv, message", [
    (["aging", "--region", "Mars"], "--region 'Mars': no customer in that region"),
    (["sla", "--currency", "XYZ"], "--currency 'XYZ': no document in that currency"),
    (["collectors", "--collector", "NOBODY"], "--collector 'NOBODY'"),
    (["disputes", "--business-unit", "Moon"], "--business-unit 'Moon'"),
    (["promises", "--customer", "CUST-NOPE"], "--customer 'CUST-NOPE': no such customer"),
    (["dunning", "--step", "prayer"], "unknown dunning step 'prayer'"),
    (["dunning", "--bucket", "200+"], "--bucket '200+': not an aging bucket"),
    (["aging", "--by", "customer", "--bucket", "old"], "--bucket 'old': not an aging bucket"),
    (["collectors", "--from", "2026-06-01", "--to", "2026-05-01"], "--from 2026-06-01 is after --to 2026-05-01"),
    (["promises", "--as-of", "31/10/2026"], "not a date (YYYY-MM-DD): '31/10/2026'"),
    (["aging", "--by", "vendor"], "invalid choice: 'vendor'"),
    (["worklist", "--region", "Mars"], "--region 'Mars'"),
])
def test_a_bad_value_is_one_clear_line_and_exit_code_2(ledger, capsys, argv, message):
    url, _, _ = ledger
    code, out, err = _run(capsys, *argv, "--db", url)
    assert code == 2 and message in err and "Traceback" not in err and out == ""


def test_out_writes_the_file(ledger, capsys, tmp_path):
    url, conn, as_of = ledger
    target = tmp_path / "aging.csv"
    code, out, err = _run(capsys, "aging", "--db", url, "--csv", "--out", str(target))
    assert code == 0 and out == "" and str(target) in err
    assert _cents(pd.read_csv(target)["open"]) == list(kpis.aging(conn, as_of)["open_cents"])
    code, _, err = _run(capsys, "aging", "--db", url, "--csv", "--out", str(tmp_path / "no" / "such" / "dir.csv"))
    assert code == 2 and "cannot write" in err


def test_csv_keeps_formula_like_text_inert(capsys):
    from analytics import cli_support as cs

    args = argparse.Namespace(json=False, csv=True, out=None)
    cs.emit(args, {}, pd.DataFrame({"customer_name": ["=HYPERLINK(\"x\")", "ACME"], "open_cents": [-100, 5]}), str)
    assert capsys.readouterr().out.splitlines() == ["customer_name,open", "\"'=HYPERLINK(\"\"x\"\")\",-1.0", "ACME,0.05"]


def test_trends_of_the_overview_and_aging_pages(ledger, capsys):
    url, conn, as_of = ledger
    dates = kpis.last_month_ends(as_of, 3)
    dates = dates if as_of in dates else [*dates, as_of]
    trend = kpis.kpi_trend(conn, dates)
    out = _json(capsys, "kpis", "--db", url, "--trend", "3")
    assert [r["as_of"] for r in out["trend"]] == [d.isoformat() for d in dates]
    assert _cents(r["ar"] for r in out["trend"]) == list(trend["ar_cents"])
    assert [r["dso_standard"] for r in out["trend"]] == list(trend["dso_standard"])
    history = kpis.aging_trend(conn, dates)
    table = _csv(capsys, "aging", "--db", url, "--history", "3")
    assert list(table["as_of"]) == [d.isoformat() for d in dates]
    for b in kpis.DEFAULT_BUCKETS:
        assert _cents(table[b.label]) == list(history.loc[history["bucket"] == b.label, "open_cents"])


def test_cash_application_reports(ledger, capsys):
    from analytics import cash_app

    url, conn, as_of = ledger
    start = as_of - dt.timedelta(days=29)  # the page's default period: the last 30 days
    k = cash_app.cash_app_kpis(conn, start, as_of)
    out = _json(capsys, "cashapp", "kpis", "--db", url)
    assert out["from"] == start.isoformat() and round(out["unapplied"] * 100) == k["unapplied_cents"]
    assert out["receipts"] == k["receipts"] and out["applied_share"] == k["applied_share"]
    aging = cash_app.unapplied_aging(conn, as_of)
    table = _csv(capsys, "cashapp", "unapplied", "--db", url)
    assert list(table["bucket"]) == list(aging["bucket"]) and _cents(table["unapplied"]) == list(aging["unapplied_cents"])
    receipts = cash_app.unapplied_cash(conn, as_of)
    out = _json(capsys, "cashapp", "unapplied", "--db", url, "--table", "receipts")
    assert [r["receipt_id"] for r in out["unapplied"]] == list(receipts["receipt_id"])
    refunds = cash_app.refund_package(conn, None, as_of)
    out = _json(capsys, "cashapp", "refunds", "--db", url)
    assert _cents(r["refundable"] for r in out["refunds"]) == list(refunds["refundable_cents"])
    assert _json(capsys, "cashapp", "queue", "--db", url)["queue"] == []  # nothing proposed in a fresh ledger


def test_risk_review_lists_the_risk_pages_flagged_accounts(ledger, capsys, tmp_path):
    from analytics import risk

    url, conn, as_of = ledger
    path = risk.save_model(risk.train(conn, as_of, max_iter=30), tmp_path / "risk.model")
    flagged = risk.credit_review(risk.score_accounts(conn, as_of, model=risk.load_model(path)))
    out = _json(capsys, "risk", "review", "--db", url, "--model", str(path))
    assert [r["customer_id"] for r in out] == list(flagged["customer_id"])
    assert [r["flag"] for r in out] == list(flagged["flag"])
