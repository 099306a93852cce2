"""One question, one answer: every path that reports a business fact agrees (issue 16).

A small hand-made ledger, as of Monday 2024-04-15 (D):

  collector C1 "Ann" with customer K1 "Kappa" (USD); I1 2024-01-02 due 2024-02-01, 1,000.00, unpaid:
  74 days past due at D (over 30 -> the SLA wants a contact in the last 7 days; over 60 -> "severe" in
  the collector KPIs). K2 "Lambda" (C1) has a paid invoice, so the risk model has some history.

Each scenario adds a few rows, then asks the same question through every path — the Worklist
(``analytics.worklist``), Customer 360 (``analytics.accounts``), SLA (``analytics.kpis.sla`` and the
operations KPIs it reads), the Collectors KPIs, the risk features, and the CLI in-process (``worklist
--json``, ``customer --json``, ``kpis --json``) — and demands one answer:

* a note only: nobody calls K1 contacted (a note is internal);
* a call on D: everybody says contacted on D, 0 days ago;
* a promise kept late but within the 3 grace days: kept everywhere; paid after the grace days: broken
  everywhere;
* a partial payment of 400.00: every balance says 600.00;
* a dispute opened and resolved on D: nobody counts it as open at D.
"""
from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from analytics import accounts, cli, ledger, schema
from analytics.kpis import ar, sla
from analytics.kpis import operations as ops
from analytics.risk import features as F
from analytics.worklist import worklist

D = dt.date
AS_OF = D(2024, 4, 15)
MONTH = (D(2024, 4, 1), AS_OF)


def _seed(conn) -> None:
    conn.execute(schema.collectors.insert(), [{"id": "C1", "name": "Ann"}])
    conn.execute(schema.customers.insert(), [
        dict(id="K1", name="Kappa", collector_id="C1", region="EMEA", customer_since=D(2023, 1, 1)),
        dict(id="K2", name="Lambda", collector_id="C1", region="EMEA", customer_since=D(2023, 1, 1))])
    conn.execute(schema.invoices.insert(), [
        dict(id="I1", customer_id="K1", invoice_date=D(2024, 1, 2), due_date=D(2024, 2, 1), amount_cents=100_000),
        dict(id="J1", customer_id="K2", invoice_date=D(2024, 1, 10), due_date=D(2024, 2, 9), amount_cents=20_000)])
    conn.execute(schema.receipts.insert(), [dict(id="RJ", customer_id="K2", receipt_date=D(2024, 2, 9),
                                                 amount_cents=20_000)])
    conn.execute(schema.applications.insert(), [dict(receipt_id="RJ", invoice_id="J1", amount_cents=20_000,
                                                     applied_date=D(2024, 2, 9))])


def _pay(conn, rid: str, day: dt.date, cents: int) -> None:
    conn.execute(schema.receipts.insert(), [dict(id=rid, customer_id="K1", receipt_date=day, amount_cents=cents)])
    conn.execute(schema.applications.insert(), [dict(receipt_id=rid, invoice_id="I1", amount_cents=cents,
                                                     applied_date=day)])


def _activity(conn, kind: str) -> None:
    conn.execute(schema.activities.insert(), [dict(customer_id="K1", occurred_at=dt.datetime(2024, 4, 15, 9, 30),
                                                   collector_id="C1", type=kind)])


def _promise(conn) -> None:
    conn.execute(schema.promises.insert(), [dict(customer_id="K1", invoice_id="I1", made_on=D(2024, 4, 1),
                                                 promised_date=D(2024, 4, 5), amount_cents=30_000)])


SCENARIOS = {
    "note only": lambda c: _activity(c, "note"),
    "call": lambda c: _activity(c, "call"),
    "promise kept late": lambda c: (_promise(c), _pay(c, "R1", D(2024, 4, 7), 30_000)),  # promised + 2 days
    "promise paid after grace": lambda c: (_promise(c), _pay(c, "R1", D(2024, 4, 10), 30_000)),  # + 5 days
    "partial payment": lambda c: _pay(c, "R1", D(2024, 4, 10), 40_000),
    "dispute opened and resolved on as-of": lambda c: c.execute(schema.disputes.insert(), [dict(
        invoice_id="I1", customer_id="K1", opened_date=AS_OF, resolved_date=AS_OF, outcome="customer_paid",
        reason_code="pricing", amount_cents=10_000)]),
}


@pytest.fixture(params=list(SCENARIOS))
def case(request, engine):
    with engine.begin() as conn:
        _seed(conn)
        SCENARIOS[request.param](conn)
    return request.param, engine


def _day(value) -> dt.date | None:
    """A date, or None for a missing value (None, NaN, NaT, NA)."""
    return None if value is None or pd.isna(value) else ledger.as_date(value)


def _recent(days) -> bool:
    """Contacted in the last 7 days (days since contact 0..6)."""
    return days is not None and not pd.isna(days) and int(days) <= 6


def _cli_json(capsys, *argv) -> dict:
    assert cli.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def _answers(engine, capsys) -> dict:
    """Every path's answer to every question, K1 at D."""
    url = engine.url.render_as_string(hide_password=False)
    with engine.connect() as conn:
        wl = worklist(conn, AS_OF).set_index("customer_id").loc["K1"]
        acct = accounts.account(conn, "K1", AS_OF)
        cov = ops.contact_coverage(conn, AS_OF).set_index("customer_id")
        col = ops.collector_kpis(conn, *MONTH).set_index("collector_id").loc["C1"]
        trend = ops.collector_trend(conn, *MONTH).set_index("collector_id").loc["C1"]
        ptp = ops.promise_stats(conn, *MONTH).iloc[0]
        detail = ops.promises_detail(conn, *MONTH)
        status = sla.sla_status(conn, AS_OF).set_index("metric")
        disputes_open = ops.open_disputes(conn, AS_OF)
        dstats = ops.dispute_stats(conn, *MONTH).iloc[0]
        feats = F.history_frame(conn, F.customer_points(AS_OF)).set_index("customer_id").loc["K1"]
        ar_core = ar.kpi_trend(conn, [AS_OF]).iloc[0]
        open_k1 = ledger.open_amount_cents(conn, customer_id="K1", as_of=AS_OF)
    cli_wl = {a["customer_id"]: a for a in _cli_json(capsys, "worklist", "--db", url, "--as-of", "2024-04-15",
                                                     "--json")["accounts"]}["K1"]
    cli_acct = _cli_json(capsys, "customer", "K1", "--db", url, "--as-of", "2024-04-15", "--json")
    cli_kpis = _cli_json(capsys, "kpis", "--db", url, "--as-of", "2024-04-15", "--json")
    facts = acct["facts"]
    promises = acct["promises"]
    return {
        "last contact": {
            "worklist": _day(wl["last_contact"]),
            "customer 360": _day(facts["last_contact"]),
            "sla contact coverage": _day(cov.loc["K1", "last_contact"]),
            "cli worklist": _day(cli_wl["last_contact"]),
            "cli customer": _day(cli_acct["facts"]["last_contact"]),
        },
        "contacted within 7 days": {
            "worklist": _recent(wl["days_since_contact"]),
            "customer 360": _recent(facts["days_since_contact"]),
            "cli worklist": _recent(cli_wl["days_since_contact"]),
            "sla contact coverage": bool(cov.loc["K1", "contacted"]),
            "sla status": status.loc["past_due_contacted", "actual"] == 100.0,
            "collectors (severe accounts touched)": int(col["severe_touched"]) == 1,
            "collectors (accounts touched)": int(col["accounts_touched"]) == 1,
            "collector trend (accounts touched)": int(trend["accounts_touched"]) == 1,
        },
        "broken promises": {
            "worklist (30 days)": int(wl["broken_promises_30d"]),
            "customer 360": int((promises["status"] == "broken").sum()),
            "customer 360 facts": facts["promises_broken"],
            "sla promise stats": int(ptp["broken_count"]),
            "sla promise detail": int((detail["status"] == "broken").sum()),
            "collectors": int(col["promises_broken"]),
            "collector trend": int(trend["promises_broken"]),
            "risk features (90 days)": int(feats["broken_promises_90"]),
            "cli worklist": int(cli_wl["broken_promises_30d"]),
            "cli customer": sum(p["status"] == "broken" for p in cli_acct["promises"]),
        },
        "kept promises": {
            "customer 360": int((promises["status"] == "kept").sum()),
            "sla promise stats": int(ptp["kept_count"]),
            "collectors": int(col["promises_kept"]),
            "collector trend": int(trend["promises_kept"]),
            "risk features (promises due - broken)": int(feats["promises_90"] - feats["broken_promises_90"]),
        },
        "balance (cents)": {
            "worklist": int(wl["open_cents"]),
            "customer 360 facts": facts["balance_cents"],
            "customer 360 items": int(acct["items"]["open_cents"].sum()),
            "sla contact coverage": int(cov.loc["K1", "past_due_cents"]),
            "collectors (C1 less K2's 0)": int(col["ar_cents"]),
            "risk features": int(feats["open_cents"]),
            "ledger.open_amount_cents": open_k1,
            "core KPIs": int(ar_core["ar_cents"]),
            "cli worklist": round(cli_wl["open_amount"] * 100),
            "cli kpis": round(cli_kpis["ar_total"] * 100),
        },
        "open disputes": {
            "worklist": int(wl["open_disputes"]),
            "customer 360 facts": facts["open_disputes"],
            "open_disputes": len(disputes_open),
            "dispute_stats open at D": int(dstats["open_count"]),
            "risk features": int(feats["open_disputes"]),
            "cli worklist": int(cli_wl["open_disputes"]),
            "cli customer": cli_acct["facts"]["open_disputes"],
        },
    }


EXPECTED = {
    "note only": {"last contact": None, "contacted within 7 days": False},
    "call": {"last contact": AS_OF, "contacted within 7 days": True},
    "promise kept late": {"broken promises": 0, "kept promises": 1, "balance (cents)": 70_000},
    "promise paid after grace": {"broken promises": 1, "kept promises": 0, "balance (cents)": 70_000},
    "partial payment": {"balance (cents)": 60_000, "broken promises": 0},
    "dispute opened and resolved on as-of": {"open disputes": 0, "balance (cents)": 100_000},
}


def test_every_path_gives_one_answer(case, capsys):
    name, engine = case
    answers = _answers(engine, capsys)
    for question, by_path in answers.items():
        values = set(by_path.values())
        assert len(values) == 1, f"{name}: {question!r} answered differently: {by_path}"
    for question, expected in EXPECTED[name].items():
        got = next(iter(answers[question].values()))
        assert got == expected, f"{name}: {question!r} is {got!r}, expected {expected!r}: {answers[question]}"


def test_open_amount_cents_matches_open_items_and_counts_every_settlement(engine):
    with engine.begin() as conn:
        _seed(conn)
        _pay(conn, "R1", D(2024, 4, 10), 40_000)
        conn.execute(schema.adjustments.insert(), [dict(invoice_id="I1", adj_date=D(2024, 5, 1), kind="write_off",
                                                        amount_cents=-10_000)])
    with engine.connect() as conn:
        assert ledger.open_amount_cents(conn, invoice_id="I1", as_of=D(2024, 4, 9)) == 100_000
        assert ledger.open_amount_cents(conn, invoice_id="I1", as_of=AS_OF) == 60_000
        assert ledger.open_amount_cents(conn, invoice_id="I1") == 50_000  # the May write-off counts too
        assert ledger.open_amount_cents(conn, invoice_id="I1", as_of=D(2023, 12, 31)) == 0  # not issued yet
        assert ledger.open_amount_cents(conn, customer_id="K1", as_of=AS_OF) == 60_000
        assert ledger.open_amount_cents(conn, customer_id="K2") == 0
        assert ledger.open_amount_cents(conn, customer_id="nobody") == 0
        for day in (D(2024, 2, 1), AS_OF, D(2024, 6, 30)):
            oi = ledger.open_items(day)
            import sqlalchemy as sa

            want = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(oi.c.open_cents), 0))
                                .where(oi.c.customer_id == "K1")).scalar()
            assert ledger.open_amount_cents(conn, customer_id="K1", as_of=day) == int(want)
        with pytest.raises(Exception, match="unknown invoice"):
            ledger.open_amount_cents(conn, invoice_id="nope")
        with pytest.raises(Exception, match="exactly one"):
            ledger.open_amount_cents(conn)


def test_default_as_of_is_the_last_business_date(engine):
    with engine.begin() as conn:
        assert ledger.default_as_of(conn, today_if_empty=False) is None
        assert ledger.default_as_of(conn) == dt.date.today()
        _seed(conn)
        _pay(conn, "R1", D(2024, 4, 10), 40_000)  # a receipt later than the last invoice
    with engine.connect() as conn:
        assert ledger.default_as_of(conn) == D(2024, 4, 10) == ar.latest_date(conn)
        from analytics.cash_app import default_as_of as cash_default
        from analytics.forecast import ledger_end

        assert cash_default(conn) == ledger_end(conn) == D(2024, 4, 10)


# ------------------------------------------------------------------------------------------------
# The metric catalogue, the docs and the CLI keys stay in step
# ------------------------------------------------------------------------------------------------
def _doc_catalogue() -> dict[str, list[str]]:
    """Rows of the "Metric catalogue" table of docs/kpi_definitions.md: key -> cells."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "kpi_definitions.md").read_text(encoding="utf-8")
    section = text.split("## Metric catalogue", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 5:
            rows[cells[0].strip("`")] = cells
    return rows


def test_docs_list_every_catalogued_metric_and_nothing_else():
    from analytics import metrics

    doc = _doc_catalogue()
    keys = [m.key for m in metrics.CATALOGUE]
    assert len(set(keys)) == len(keys)
    assert sorted(doc) == sorted(keys), "docs/kpi_definitions.md 'Metric catalogue' is out of step"
    for m in metrics.CATALOGUE:
        assert doc[m.key][1] == m.label and doc[m.key][2] == m.unit and doc[m.key][4] == f"`{m.source}`", m.key


def test_catalogue_keys_are_the_cli_json_keys_and_labels_feed_sla(engine, capsys):
    from analytics import metrics

    with engine.begin() as conn:
        _seed(conn)
    url = engine.url.render_as_string(hide_password=False)
    out = _cli_json(capsys, "kpis", "--db", url, "--as-of", "2024-04-15", "--json")
    assert list(out) == [*metrics.CONTEXT_KEYS, *metrics.snapshot_keys()]  # the same keys, the same order
    assert sla.LABELS == {m: metrics.get(f"sla.{m}").label for m in sla.METRICS}
    for m in metrics.CATALOGUE:  # every source names a real function
        module, _, name = m.source.rpartition(".")
        assert callable(getattr(__import__(module, fromlist=[name]), name)), m.source


def test_customer_360_lists_a_promise_recorded_after_the_as_of_date_as_pending(engine):
    with engine.begin() as conn:
        _seed(conn)
        _promise(conn)
        conn.execute(schema.promises.insert(), [dict(customer_id="K1", made_on=D(2024, 5, 2),
                                                     promised_date=D(2024, 5, 9), amount_cents=5_000)])
    with engine.connect() as conn:
        promises = accounts.customer_promises(conn, "K1", AS_OF)
        facts = accounts.customer_facts(conn, "K1", AS_OF)
    assert promises["status"].tolist() == ["pending", "broken"]  # newest first; 04-05 + 3 days passed unpaid
    assert (facts["promises_broken"], facts["promises_pending"]) == (1, 0)  # facts: promises made by as-of
