"""Matcher quality against the generator's ground truth (``receipt_truth``)."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from analytics import schema
from analytics.cash_app.matching import default_as_of, propose, unapplied_receipts_query

ap = schema.applications
truth_t = schema.receipt_truth


def _truth_in_scope(conn: sa.Connection, as_of: dt.date) -> pd.DataFrame:
    """True (receipt, invoice, amount) lines of receipts with unapplied cash, less what is already applied."""
    unapplied = unapplied_receipts_query(as_of).subquery("u")
    applied = (sa.select(ap.c.receipt_id, ap.c.invoice_id, sa.func.sum(ap.c.amount_cents).label("applied_cents"))
               .where(ap.c.receipt_id.is_not(None), ap.c.applied_date <= as_of)
               .group_by(ap.c.receipt_id, ap.c.invoice_id).subquery("a"))
    remaining = truth_t.c.amount_cents - sa.func.coalesce(applied.c.applied_cents, 0)
    stmt = (sa.select(truth_t.c.receipt_id, truth_t.c.invoice_id, remaining.label("truth_cents"))
            .select_from(truth_t.join(unapplied, unapplied.c.receipt_id == truth_t.c.receipt_id)
                         .outerjoin(applied, sa.and_(applied.c.receipt_id == truth_t.c.receipt_id,
                                                     applied.c.invoice_id == truth_t.c.invoice_id)))
            .where(remaining > 0))
    frame = pd.DataFrame(conn.execute(stmt).all(), columns=["receipt_id", "invoice_id", "truth_cents"])
    frame["truth_cents"] = frame["truth_cents"].astype("int64")
    return frame


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def evaluate_matching(conn: sa.Connection, as_of: dt.date | None = None, auto_threshold: float = 0.95) -> dict:
    """Precision and recall of :func:`propose` against ``receipt_truth`` (generated ledgers only).

    Scope: every receipt with unapplied cash at ``as_of``; its true lines less what is already
    applied to them. A proposed line is **correct** when its (receipt, invoice) pair is a true line;
    **amount-correct** when its amount also equals the true remaining amount.

    * ``precision`` = correct proposed lines / proposed lines;
    * ``recall`` = true lines found / true lines in scope;
    * ``auto_precision`` / ``auto_recall``: the same for lines with ``confidence >= auto_threshold``
      (what :func:`analytics.cash_app.run_matching` would apply without review); the target is
      ``auto_precision >= 0.99``;
    * ``by_rule``: lines, correct and precision per rule.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    as_of : datetime.date, optional
        Default :func:`analytics.cash_app.matching.default_as_of`.
    auto_threshold : float, default 0.95

    Returns
    -------
    dict
        JSON-ready figures (ratios in [0, 1], None when undefined).

    Example
    -------
    >>> with engine.connect() as conn:  # doctest: +SKIP
    ...     evaluate_matching(conn)["auto_precision"]
    1.0
    """
    as_of = as_of or default_as_of(conn)
    truth = _truth_in_scope(conn, as_of)
    props = propose(conn, as_of)
    merged = props.merge(truth, on=["receipt_id", "invoice_id"], how="left")
    merged["correct"] = merged["truth_cents"].notna()
    merged["amount_correct"] = merged["correct"] & (merged["truth_cents"] == merged["amount_cents"])
    pairs_found = truth.merge(props[["receipt_id", "invoice_id"]].drop_duplicates(), on=["receipt_id", "invoice_id"])
    auto = merged[merged["confidence"] >= auto_threshold]
    auto_found = truth.merge(auto[["receipt_id", "invoice_id"]].drop_duplicates(), on=["receipt_id", "invoice_id"])
    by_rule = {}
    for rule, g in merged.groupby("rule", sort=True):
        by_rule[str(rule)] = {"lines": int(len(g)), "correct": int(g["correct"].sum()),
                              "precision": _ratio(int(g["correct"].sum()), len(g))}
    has_truth = truth["receipt_id"].nunique()
    return {
        "as_of": as_of.isoformat(),
        "receipts_in_scope": int(has_truth),
        "true_lines": int(len(truth)),
        "proposed_lines": int(len(merged)),
        "correct_lines": int(merged["correct"].sum()),
        "precision": _ratio(int(merged["correct"].sum()), len(merged)),
        "amount_precision": _ratio(int(merged["amount_correct"].sum()), len(merged)),
        "recall": _ratio(len(pairs_found), len(truth)),
        "auto_threshold": auto_threshold,
        "auto_lines": int(len(auto)),
        "auto_precision": _ratio(int(auto["correct"].sum()), len(auto)),
        "auto_amount_precision": _ratio(int(auto["amount_correct"].sum()), len(auto)),
        "auto_recall": _ratio(len(auto_found), len(truth)),
        "by_rule": by_rule,
    }
