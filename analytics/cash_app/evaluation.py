"""Matcher quality against the generator's ground truth (``receipt_truth``)."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from analytics import schema
from analytics.cash_app.matching import default_as_of, propose, unapplied_receipts_query
from analytics.db import read_frame

ap = schema.applications
truth_t = schema.receipt_truth


def _truth_in_scope(conn: sa.Connection, as_of: dt.date) -> pd.DataFrame:
    """True (receipt, invoice, amount) lines of receipts with unapplied cash, less what is already applied."""
    unapplied = unapplied_receipts_query(as_of, every_return=True).subquery("u")
    applied = (sa.select(ap.c.receipt_id, ap.c.invoice_id, sa.func.sum(ap.c.amount_cents).label("applied_cents"))
               .where(ap.c.receipt_id.is_not(None), ap.c.applied_date <= as_of)
               .group_by(ap.c.receipt_id, ap.c.invoice_id).subquery("a"))
    remaining = truth_t.c.amount_cents - sa.func.coalesce(applied.c.applied_cents, 0)
    stmt = (sa.select(truth_t.c.receipt_id, truth_t.c.invoice_id, remaining.label("truth_cents"))
            .select_from(truth_t.join(unapplied, unapplied.c.receipt_id == truth_t.c.receipt_id)
                         .outerjoin(applied, sa.and_(applied.c.receipt_id == truth_t.c.receipt_id,
                                                     applied.c.invoice_id == truth_t.c.invoice_id)))
            .where(remaining > 0))
    frame = read_frame(conn, stmt, ["receipt_id", "invoice_id", "truth_cents"])
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


HIT_RATE_COLUMNS = ["statement_id", "format", "account", "statement_ref", "currency", "from_date", "to_date",
                    "file_name", "receipts", "auto_applied", "proposed", "unmatched", "returned", "hit_rate",
                    "auto_rate", "amount_cents", "auto_applied_amount_cents", "proposed_amount_cents",
                    "unmatched_amount_cents"]


def statement_hit_rates(conn: sa.Connection) -> pd.DataFrame:
    """Hit rate of cash application per loaded bank statement.

    Each receipt a statement's credit lines made is counted once, by its best outcome so far:
    ``auto_applied`` (the matching run applied cash to it automatically), ``proposed`` (it got
    proposals, waiting for or decided by a person, or cash applied by hand, e.g. a remittance
    advice), else ``unmatched`` (nothing proposed: suspense or no open item fits). A receipt a bank
    return reversed counts as ``returned`` and is left out of the rates.
    ``hit_rate = (auto_applied + proposed) / (receipts − returned)``, ``auto_rate = auto_applied /
    (receipts − returned)``. Source: ``bank_statements``, ``receipts.statement_id``,
    ``match_proposals``, ``applications``, ``bank_lines``.

    Returns
    -------
    pandas.DataFrame
        One row per statement, newest first; columns :data:`HIT_RATE_COLUMNS` (money in cents).

    Example
    -------
    >>> statement_hit_rates(conn)[["statement_id", "receipts", "auto_applied", "hit_rate"]]  # doctest: +SKIP
    """
    from analytics.ledger import returned_receipts

    bs, rc, mp = schema.bank_statements, schema.receipts, schema.match_proposals
    stmts = conn.execute(sa.select(bs.c.id, bs.c.format, bs.c.account, bs.c.statement_ref, bs.c.currency,
                                   bs.c.from_date, bs.c.to_date, bs.c.file_name).order_by(bs.c.id.desc())).all()
    if not stmts:
        return pd.DataFrame(columns=HIT_RATE_COLUMNS)
    recs = read_frame(conn, sa.select(rc.c.id, rc.c.statement_id, rc.c.amount_cents)
                      .where(rc.c.statement_id.is_not(None)), ["receipt_id", "statement_id", "amount_cents"])
    auto = set(conn.execute(sa.select(mp.c.receipt_id).where(mp.c.status == "auto_applied")
                            .where(mp.c.receipt_id.in_(sa.select(rc.c.id).where(rc.c.statement_id.is_not(None))))
                            .distinct()).scalars())
    proposed = set(conn.execute(sa.select(mp.c.receipt_id).where(mp.c.status != "auto_applied")
                                .where(mp.c.receipt_id.in_(sa.select(rc.c.id).where(rc.c.statement_id.is_not(None))))
                                .distinct()).scalars())
    proposed |= set(conn.execute(sa.select(ap.c.receipt_id).where(ap.c.source != "auto", ap.c.amount_cents > 0)
                                 .where(ap.c.receipt_id.in_(sa.select(rc.c.id).where(rc.c.statement_id.is_not(None))))
                                 .distinct()).scalars())
    returned = set(conn.execute(returned_receipts()).scalars())
    recs["outcome"] = [("returned" if r in returned else "auto_applied" if r in auto else
                        "proposed" if r in proposed else "unmatched") for r in recs["receipt_id"]]
    out = []
    for s in stmts:
        mine = recs[recs["statement_id"] == s.id]
        counts = mine["outcome"].value_counts()
        cents = mine.groupby("outcome")["amount_cents"].sum()
        n = len(mine)
        base = n - int(counts.get("returned", 0))
        a, p, u = (int(counts.get(k, 0)) for k in ("auto_applied", "proposed", "unmatched"))
        out.append({"statement_id": int(s.id), "format": s.format, "account": s.account,
                    "statement_ref": s.statement_ref, "currency": s.currency, "from_date": s.from_date,
                    "to_date": s.to_date, "file_name": s.file_name, "receipts": n, "auto_applied": a,
                    "proposed": p, "unmatched": u, "returned": int(counts.get("returned", 0)),
                    "hit_rate": _ratio(a + p, base), "auto_rate": _ratio(a, base),
                    "amount_cents": int(mine["amount_cents"].sum()),
                    "auto_applied_amount_cents": int(cents.get("auto_applied", 0)),
                    "proposed_amount_cents": int(cents.get("proposed", 0)),
                    "unmatched_amount_cents": int(cents.get("unmatched", 0))})
    return pd.DataFrame(out, columns=HIT_RATE_COLUMNS)
