"""Cash application on a hand-made ledger, on every backend: matching rules, posting, audit, KPIs."""
from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import cash_app, db, schema
from analytics.auth import PermissionDenied, User
from analytics.cash_app.matching import _Item, _subset_sum, doc_key, remittance_tokens
from analytics.errors import UserError

D = dt.date
FIN = User("fiona", "finance")
AS_OF = D(2025, 3, 31)


def _ledger(engine):
    """Two USD customers and one EUR customer; receipts chosen so each rule fires once."""
    with engine.begin() as conn:
        conn.execute(schema.customers.insert(), [
            dict(id="K1", name="Kilo One", currency="USD"),
            dict(id="K2", name="Kilo Two", currency="USD"),
            dict(id="K3", name="Kilo Three", currency="EUR"),
            dict(id="K4", name="Kilo Four", currency="EUR"),
        ])
        inv = [
            ("INV-0000101", "K1", "invoice", D(2025, 1, 5), 100_000),
            ("INV-0000102", "K1", "invoice", D(2025, 1, 10), 50_000),
            ("INV-0000103", "K1", "invoice", D(2025, 1, 20), 25_000),
            ("CM-0000001", "K1", "credit_memo", D(2025, 1, 25), -10_000),
            ("INV-0000201", "K2", "invoice", D(2025, 1, 3), 30_000),
            ("INV-0000202", "K2", "invoice", D(2025, 1, 4), 12_345),
            ("INV-0000203", "K2", "invoice", D(2025, 1, 6), 20_000),
            ("INV-0000204", "K2", "invoice", D(2025, 1, 8), 7_000),
            ("INV-0000301", "K3", "invoice", D(2025, 2, 1), 40_000),
            ("INV-0000302", "K3", "invoice", D(2025, 2, 2), 11_111),
            ("INV-0000401", "K4", "invoice", D(2025, 2, 2), 5_000),
        ]
        conn.execute(schema.invoices.insert(), [
            dict(id=i, customer_id=c, doc_type=t, invoice_date=d, due_date=d + dt.timedelta(days=30),
                 amount_cents=a, currency="EUR" if c in ("K3", "K4") else "USD") for i, c, t, d, a in inv])
        conn.execute(schema.applications.insert(), [  # credit memo consumed against INV-103: 150.00 left
            dict(receipt_id=None, credit_memo_id="CM-0000001", invoice_id="INV-0000103", amount_cents=10_000,
                 applied_date=D(2025, 1, 26), source="import")])
        rc = [
            # reference, ties to 101 + 102
            ("R1", "K1", D(2025, 3, 1), 150_000, "USD", "Payment for INV-0000101, INV-0000102"),
            # fuzzy (transposed digits 103 -> 130), ties to the open 150.00
            ("R2", "K1", D(2025, 3, 2), 15_000, "USD", "INV-0000130"),
            # no remittance: subset sum 201 + 204 (300.00 + 70.00)
            ("R3", "K2", D(2025, 3, 3), 37_000, "USD", None),
            # exact amount against 202
            ("R4", "K2", D(2025, 3, 4), 12_345, "USD", "March payment"),
            # short payment on 203 (200.00, paid 190.00)
            ("R5", "K2", D(2025, 3, 5), 19_000, "USD", "Payment on account"),
            # unidentified payer, identified by reference (ties)
            ("R6", None, D(2025, 3, 6), 40_000, "EUR", "INV-0000301"),
            # unidentified, no text: unique amount anywhere
            ("R7", None, D(2025, 3, 7), 11_111, "EUR", None),
        ]
        conn.execute(schema.receipts.insert(), [
            dict(id=i, customer_id=c, receipt_date=d, amount_cents=a, currency=cur, method="eft", remittance_ref=t)
            for i, c, d, a, cur, t in rc])
        db.bump_ledger_version(conn)


def test_tokens_and_keys():
    assert doc_key("INV-0001234") == "1234"
    assert doc_key("ABC") is None
    assert remittance_tokens("Payment for INV-0003458, inv 0003478; 3551") == [
        ("INV", "3458"), ("INV", "3478"), ("", "3551")]
    assert remittance_tokens(None) == []
    assert remittance_tokens("Payment on account") == []


def test_subset_sum_is_bounded_and_finds_four_items():
    items = [_Item(f"I{k}", "K", "USD", D(2025, 1, 1), D(2025, 1, 1), a)
             for k, a in enumerate([101, 203, 307, 409, 503, 601])]
    assert _subset_sum(items, 101 + 307 + 409 + 601) == [(0, 2, 3, 5)]
    assert _subset_sum(items, 203 + 601) == [(1, 5)]
    assert len(_subset_sum(items, 203 + 307)) == 2  # 101 + 409 too: not unique
    assert _subset_sum(items, 5) == []
    many = [_Item(f"I{k}", "K", "USD", D(2025, 1, 1), D(2025, 1, 1), 10**9 + 2**k) for k in range(30)]
    assert _subset_sum(many, 2 * 10**9 + 2**0 + 2**19) == [(0, 19)]
    assert _subset_sum(many, 2 * 10**9 + 2**0 + 2**25) == []  # item 25 is beyond the 20-candidate cap


def test_propose_rules(engine):
    _ledger(engine)
    with engine.connect() as conn:
        before = db.ledger_version(conn)
        props = cash_app.propose(conn, AS_OF)
        assert db.ledger_version(conn) == before  # pure
    got = {(r.receipt_id, r.invoice_id): (r.amount_cents, r.rule, r.confidence, r.customer_id)
           for r in props.itertuples()}
    assert got == {
        ("R1", "INV-0000101"): (100_000, "reference", 0.99, "K1"),
        ("R1", "INV-0000102"): (50_000, "reference", 0.99, "K1"),
        ("R2", "INV-0000103"): (15_000, "reference_fuzzy", 0.97, "K1"),
        ("R3", "INV-0000201"): (30_000, "subset_sum", 0.85, "K2"),
        ("R3", "INV-0000204"): (7_000, "subset_sum", 0.85, "K2"),
        ("R4", "INV-0000202"): (12_345, "exact_amount", 0.9, "K2"),
        ("R5", "INV-0000203"): (19_000, "short_pay", 0.75, "K2"),
        ("R6", "INV-0000301"): (40_000, "reference", 0.96, "K3"),
        ("R7", "INV-0000302"): (11_111, "exact_amount_any_customer", 0.5, "K3"),
    }
    assert props.loc[props.rule == "short_pay", "deduction_cents"].tolist() == [1_000]
    assert props.loc[props.receipt_id == "R6", "receipt_customer_id"].isna().all()
    with engine.connect() as conn:
        only = cash_app.propose(conn, AS_OF, receipt_ids=["R4"])
        assert only.receipt_id.tolist() == ["R4"]
        assert cash_app.propose(conn, D(2025, 2, 1)).empty  # no receipt yet


def test_oldest_first_and_overpayment(duckdb_engine):
    _ledger(duckdb_engine)
    with duckdb_engine.begin() as conn:
        conn.execute(schema.receipts.insert().values(id="R9", customer_id="K1", receipt_date=D(2025, 3, 1),
                                                     amount_cents=300_000, currency="USD", method="wire"))
    with duckdb_engine.connect() as conn:
        props = cash_app.propose(conn, AS_OF, receipt_ids=["R9"])
    # nothing ties: oldest first over every open K1 item (1,000 + 500 + 150), the rest is an overpayment
    assert props.rule.unique().tolist() == ["oldest_first"]
    assert props.invoice_id.tolist() == ["INV-0000101", "INV-0000102", "INV-0000103"]
    assert props.amount_cents.sum() == 165_000


def _audit(engine, action=None):
    with engine.connect() as conn:
        stmt = sa.select(schema.audit_log.c.action, schema.audit_log.c.table_name, schema.audit_log.c.row_id,
                         schema.audit_log.c.actor)
        if action:
            stmt = stmt.where(schema.audit_log.c.action == action)
        return conn.execute(stmt.order_by(schema.audit_log.c.id)).all()


def _apps(engine):
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(sa.select(schema.applications).where(
            schema.applications.c.receipt_id.is_not(None)).order_by(schema.applications.c.id)).mappings().all())


def test_run_matching_auto_applies_and_queues(engine):
    _ledger(engine)
    v0 = db.ledger_version(engine)
    summary = cash_app.run_matching(engine, FIN, auto_threshold=0.95, as_of=AS_OF)
    assert summary["auto_applied"] == 4 and summary["queued"] == 5 and summary["proposals"] == 9
    assert summary["auto_applied_cents"] == 100_000 + 50_000 + 15_000 + 40_000
    assert db.ledger_version(engine) == v0 + 1
    apps = _apps(engine)
    assert set(apps.source) == {"auto"} and set(apps.rule) == {"reference", "reference_fuzzy"}
    assert set(apps.applied_by) == {"fiona"}
    assert (pd.to_datetime(apps.applied_date).dt.date == AS_OF).all()
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(schema.match_proposals.c.status, sa.func.count())
                                     .group_by(schema.match_proposals.c.status)).all())
        # the unidentified receipt's payer is the customer of the invoice it paid (row not rewritten)
        assert cash_app.posting.applied_customers(conn, "R6") == {"K3"}
        assert cash_app.item_open_cents(conn, "INV-0000101") == 0
    assert statuses == {"auto_applied": 4, "proposed": 5}
    assert len(_audit(engine, "propose_match")) == 9
    assert len(_audit(engine, "apply_cash")) == 4
    assert len(_audit(engine, "identify_payer")) == 1
    # a second run leaves receipts with pending proposals alone
    again = cash_app.run_matching(engine, FIN, as_of=AS_OF)
    assert again["proposals"] == 0 and sorted(again["skipped_pending"]) == ["R3", "R4", "R5", "R7"]


def test_accept_and_reject(engine):
    _ledger(engine)
    cash_app.run_matching(engine, FIN, as_of=AS_OF)
    with engine.connect() as conn:
        pending = {r.receipt_id: r.id for r in conn.execute(
            sa.select(schema.match_proposals).where(schema.match_proposals.c.status == "proposed")).all()}
    cash_app.accept_proposal(engine, FIN, pending["R4"], applied_date=AS_OF)
    cash_app.reject_proposal(engine, FIN, pending["R5"], reason="customer says it pays 204")
    with pytest.raises(UserError, match="already accepted"):
        cash_app.accept_proposal(engine, FIN, pending["R4"])
    with pytest.raises(UserError, match="unknown proposal"):
        cash_app.reject_proposal(engine, FIN, 999_999)
    with engine.connect() as conn:
        status = dict(conn.execute(sa.select(schema.match_proposals.c.id, schema.match_proposals.c.status)).all())
        assert cash_app.receipt_unapplied_cents(conn, "R4") == 0
        assert cash_app.receipt_unapplied_cents(conn, "R5") == 19_000
    assert status[pending["R4"]] == "accepted" and status[pending["R5"]] == "rejected"
    apps = _apps(engine)
    assert apps[apps.receipt_id == "R4"].source.tolist() == ["proposal"]
    assert [a.action for a in _audit(engine)][-3:] == ["apply_cash", "accept_proposal", "reject_proposal"]


def test_apply_split_unapply_and_validation(engine):
    _ledger(engine)
    day = AS_OF
    ids = cash_app.apply(engine, FIN, "R3", {"INV-0000201": 25_000, "INV-0000204": 5_000}, applied_date=day)
    assert len(ids) == 2
    with engine.connect() as conn:
        assert cash_app.receipt_unapplied_cents(conn, "R3") == 7_000
        assert cash_app.item_open_cents(conn, "INV-0000204") == 2_000
    n_audit = len(_audit(engine))
    v = db.ledger_version(engine)
    bad = [
        ({"INV-0000204": 2_001}, "more than invoice"),                     # above the item's open amount
        ({"INV-0000202": 7_001}, "more than receipt"),                     # above the receipt's unapplied
        ({"INV-0000101": 100}, "belongs to K1"),                           # another customer's item
        ({"CM-0000001": 100}, "credit memo"),
        ({"NOPE": 100}, "unknown invoice"),
        ({"INV-0000202": 0}, "greater than zero"),
        ({"INV-0000202": 10.5}, "whole number"),
        ({}, "nothing to apply"),
    ]
    for alloc, msg in bad:
        with pytest.raises(UserError, match=msg):
            cash_app.apply(engine, FIN, "R3", alloc, applied_date=day)
    with pytest.raises(UserError, match="before the receipt"):
        cash_app.apply(engine, FIN, "R3", {"INV-0000202": 100}, applied_date=D(2025, 3, 1))
    with pytest.raises(UserError, match="unknown receipt"):
        cash_app.apply(engine, FIN, "R99", {"INV-0000202": 100})
    with pytest.raises(PermissionDenied):
        cash_app.apply(engine, User("c", "collector", "C1"), "R3", {"INV-0000202": 100})
    with pytest.raises(UserError, match="is in USD"):
        cash_app.apply(engine, FIN, "R7", {"INV-0000202": 100}, applied_date=day)
    assert len(_audit(engine)) == n_audit and db.ledger_version(engine) == v  # nothing written
    # unapply: a negative row, history kept
    rid = cash_app.unapply(engine, FIN, "R3", "INV-0000204", 3_000, applied_date=day, reason="wrong item")
    with pytest.raises(UserError, match=r"USD 20.01 is more than the USD 20.00"):
        cash_app.unapply(engine, FIN, "R3", "INV-0000204", 2_001, applied_date=day)
    with pytest.raises(UserError, match="nothing applied"):
        cash_app.unapply(engine, FIN, "R3", "INV-0000202")
    apps = _apps(engine)
    assert apps.amount_cents.tolist() == [25_000, 5_000, -3_000] and int(apps.id.iloc[-1]) == rid
    with engine.connect() as conn:
        assert cash_app.receipt_unapplied_cents(conn, "R3") == 10_000
        assert cash_app.item_open_cents(conn, "INV-0000204") == 5_000
    trail = _audit(engine, "unapply_cash")
    assert len(trail) == 1 and trail[0].row_id == str(rid) and trail[0].actor == "fiona"


def test_unidentified_receipt_is_applied_to_one_customer(engine):
    _ledger(engine)
    with pytest.raises(UserError, match="one customer"):
        cash_app.apply(engine, FIN, "R6", {"INV-0000301": 100, "INV-0000401": 100}, applied_date=AS_OF)
    cash_app.apply(engine, FIN, "R6", {"INV-0000301": 100}, applied_date=AS_OF)
    with pytest.raises(UserError, match="one customer"):  # later applications stay with that customer
        cash_app.apply(engine, FIN, "R6", {"INV-0000401": 100}, applied_date=AS_OF)
    with engine.connect() as conn:
        props = cash_app.propose(conn, AS_OF, receipt_ids=["R6"])
    # the rest of R6 is proposed on K3's items only (its payer), not matched by amount elsewhere
    assert set(props.customer_id) == {"K3"} and props.amount_cents.sum() == 40_000 - 100
    cash_app.apply(engine, FIN, "R6", {"INV-0000301": 200}, applied_date=AS_OF)
    assert len(_audit(engine, "identify_payer")) == 1


def test_kpis_aging_and_refunds(engine):
    _ledger(engine)
    cash_app.run_matching(engine, FIN, as_of=AS_OF)
    # an overpayment: K1 pays 200.00 more than it owes
    with engine.begin() as conn:
        conn.execute(schema.receipts.insert().values(id="R8", customer_id="K1", receipt_date=D(2025, 1, 2),
                                                     amount_cents=20_000, currency="USD", method="check",
                                                     remittance_ref="deposit"))
    with engine.connect() as conn:
        aging = cash_app.unapplied_aging(conn, AS_OF)
        k = cash_app.cash_app_kpis(conn, D(2025, 3, 1), AS_OF)
        detail = cash_app.unapplied_cash(conn, AS_OF)
        refunds = cash_app.refund_package(conn, as_of=AS_OF)
        one = cash_app.refund_package(conn, "K2", as_of=AS_OF)
    # unapplied: R3 370.00, R4 123.45, R5 190.00 (24-28 days), R7 111.11 (24 days), R8 200.00 (88 days)
    assert aging.bucket.tolist() == ["0-7", "8-30", "31-60", "61-90", "90+"]
    assert aging.unapplied_cents.tolist() == [0, 37_000 + 12_345 + 19_000 + 11_111, 0, 20_000, 0]
    assert aging.receipts.tolist() == [0, 4, 0, 1, 0]
    assert detail.unapplied_cents.sum() == aging.unapplied_cents.sum()
    assert set(detail.loc[detail.pending_proposals > 0, "receipt_id"]) == {"R3", "R4", "R5", "R7"}
    assert k["receipts"] == 7 and k["receipts_with_proposals"] == 7
    assert k["auto_match_rate"] == round(3 / 7, 4)  # R1, R2, R6
    assert k["missing_remittance_share"] == round(4 / 7, 4)  # R3, R4, R5, R7
    assert k["applied_share"] == round(3 / 7, 4) and k["median_days_to_apply"] == 29.0
    assert k["mean_days_to_apply"] == 28.0  # 30, 29 and 25 days
    assert k["unapplied_cents"] == 37_000 + 12_345 + 19_000 + 11_111 + 20_000
    assert k["deductions_count"] == 0
    # K1 owes nothing after the auto-applications; R8 is refundable. K2 still owes more than its cash.
    assert refunds.customer_id.tolist() == ["K1"]
    r = refunds.iloc[0]
    assert (r.unapplied_cash_cents, r.open_debit_cents, r.refundable_cents) == (20_000, 0, 20_000)
    assert r.source_receipts == "R8 (200.00)"
    assert one.empty


def test_cli_match_and_apply(tmp_path, capsys):
    from analytics.cli import main

    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    eng = db.connect(url)
    _ledger(eng)
    eng.dispose()
    assert main(["cashapp", "match", "--db", url, "--json", "--as-of", "2025-03-31"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["proposals"] == 9 and out["auto_eligible"] == 4 and out["applied"] is None
    assert out["quality"] is None  # no receipt_truth
    assert main(["cashapp", "match", "--db", url, "--json", "--as-of", "2025-03-31", "--apply"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["applied"]["auto_applied"] == 4
    assert main(["cashapp", "match", "--db", url, "--threshold", "0"]) == 2
