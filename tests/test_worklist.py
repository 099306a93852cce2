"""Collector worklist on a hand-made ledger (as of 2024-04-15; tiny ledger -> heuristic scores).

K1 (collector C1): the ledger of tests/test_risk.py: open I2 300.00 (44 dpd, disputed), I3 300.00 (15 dpd);
   a promise of 100.00 due today, one of 50.00 due 04-05 not kept; last contact a call on 2024-04-12 -> 3 days ago.
   Next step from the worst UNDISPUTED item (I3, 15 dpd): reminder.
K3 (collector C2): one invoice of 10,000.00 due 2024-01-31, unpaid -> 75 dpd -> escalation; never contacted.
K2: nothing open -> not on the worklist.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest

from analytics import cli, schema
from analytics.ledger import LedgerFilter
from analytics.worklist import COLUMNS, worklist
from tests.test_risk import AS_OF, _seed

D = dt.date


@pytest.fixture
def ledger(engine):
    with engine.begin() as conn:
        _seed(conn)
        conn.execute(schema.collectors.insert(), [{"id": "C2", "name": "Bob"}])
        conn.execute(schema.customers.insert(), [dict(id="K3", name="Mu", collector_id="C2", region="EMEA")])
        conn.execute(schema.invoices.insert(), [dict(id="M1", customer_id="K3", invoice_date=D(2024, 1, 1),
                                                     due_date=D(2024, 1, 31), amount_cents=1_000_000)])
        conn.execute(schema.promises.insert(), [
            dict(customer_id="K1", made_on=D(2024, 4, 10), promised_date=AS_OF, amount_cents=10_000),
            dict(customer_id="K1", made_on=D(2024, 4, 1), promised_date=D(2024, 4, 5), amount_cents=5_000)])
        conn.execute(schema.activities.insert(), [
            dict(customer_id="K1", occurred_at=dt.datetime(2024, 4, 12, 10, 30), collector_id="C1", type="call"),
            dict(customer_id="K1", occurred_at=dt.datetime(2024, 3, 1, 9), collector_id="C1", type="email"),
            dict(customer_id="K1", occurred_at=dt.datetime(2024, 4, 16, 9), collector_id="C1", type="call")])
    return engine


def test_worklist_ranking_and_facts(ledger):
    wl = worklist(ledger, AS_OF)
    assert list(wl.columns) == COLUMNS
    assert list(wl["customer_id"]) == ["K3", "K1"]  # K3: larger, older balance -> larger expected loss
    assert list(wl["rank"]) == [1, 2]
    assert (wl["expected_loss_cents"].diff().dropna() <= 0).all()
    k1 = wl.set_index("customer_id").loc["K1"]
    assert k1["open_cents"] == 60_000 and k1["overdue_cents"] == 60_000 and k1["worst_days_past_due"] == 44
    assert k1["next_step"] == "reminder"  # I2 is in dispute: dunning follows I3 (15 dpd)
    assert k1["promises_due_today"] == 1 and k1["promised_today_cents"] == 10_000
    # 04-05 promise broken (no receipt); the 03-15 one is 31 days back, outside the 30-day window.
    assert k1["broken_promises_30d"] == 1
    assert k1["open_disputes"] == 1 and k1["disputed_cents"] == 5_000
    assert k1["last_contact"] == D(2024, 4, 12) and k1["days_since_contact"] == 3  # 04-16 call is in the future
    k3 = wl.set_index("customer_id").loc["K3"]
    assert k3["next_step"] == "escalation" and k3["worst_days_past_due"] == 75
    assert k3["last_contact"] is None or k3["last_contact"] != k3["last_contact"]  # never contacted
    assert k3["band"] in ("high", "critical") and "75 days past due" in k3["reasons"]


def test_worklist_collector_filter_and_empty(ledger):
    wl = worklist(ledger, AS_OF, LedgerFilter(collectors=("C2",)))
    assert list(wl["customer_id"]) == ["K3"]
    assert worklist(ledger, D(2023, 1, 1)).empty  # nothing issued yet


def test_worklist_cli_json(ledger, capsys):
    url = ledger.url.render_as_string(hide_password=False)
    assert cli.main(["worklist", "--db", url, "--as-of", "2024-04-15", "--collector", "C1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["as_of"] == "2024-04-15" and [a["customer_id"] for a in out["accounts"]] == ["K1"]
    row = out["accounts"][0]
    assert {"rank", "band", "probability", "expected_loss", "reasons", "next_step", "promises_due_today",
            "open_disputes", "last_contact", "days_since_contact"} <= set(row)
    assert row["open_amount"] == 600.0 and row["last_contact"] == "2024-04-12"
    assert cli.main(["worklist", "--db", url, "--as-of", "15/04/2024"]) == 2


def test_worklist_ranks_by_contact_value(ledger):
    """K3's 10,000.00 at 75 days past due is at stake; K1's overdue is 300.00 disputed + 300.00 at 15 days:
    with no contact history every customer gets the default response, so the amount at stake decides."""
    from analytics.risk.policy import DEFAULT_RESPONSE

    wl = worklist(ledger, AS_OF).set_index("customer_id")
    assert list(wl.index) == ["K3", "K1"]
    assert wl["response"].tolist() == [DEFAULT_RESPONSE, DEFAULT_RESPONSE]
    assert wl.loc["K3", "contact_value_cents"] > wl.loc["K1", "contact_value_cents"] > 0
    assert wl.loc["K1", "contact_value_cents"] <= DEFAULT_RESPONSE * 30_000  # the disputed I2 is not chased
    assert (wl["contact_value_cents"].diff().dropna() <= 0).all()
