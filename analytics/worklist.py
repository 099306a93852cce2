"""The collector worklist: open accounts ranked by expected loss, with what to do next and why.

For every account with a positive open balance at ``as_of`` (within the filter, e.g. one collector's
portfolio):

* ``probability``, ``expected_loss_cents`` (= probability × open balance), ``band`` and ``reasons``
  from :func:`analytics.risk.score_accounts` (model trained on the ledger's own history before
  ``as_of``, cached by ledger version; a documented heuristic when there is too little history);
* ``promises_due_today`` / ``promised_today_cents``: promises whose promised date is ``as_of``;
  ``broken_promises_30d``: promises due in the 30 days before ``as_of`` not kept (the customer's
  receipts from the promise to the promised date fall short of the amount);
* ``open_disputes`` / ``disputed_cents``: disputes opened on/before ``as_of`` and unresolved at it;
* ``last_contact`` (date of the latest activity on/before ``as_of``) and ``days_since_contact``;
* ``worst_days_past_due`` over all open items, and ``next_step`` — the dunning step for the worst
  days past due of the items NOT in dispute (:func:`analytics.dunning.next_step`: reminder 1–15,
  second notice 16–30, call 31–60, escalation 61–90, hold 91–120, collection agency 121+).

Rows are ordered by expected loss (largest first), then probability, then customer id.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json

import numpy as np
import pandas as pd
import sqlalchemy as sa

from analytics import schema
from analytics.db import days_between
from analytics.ledger import NO_FILTER, LedgerFilter, open_items

try:  # the workflow helper's ladder (shared with dunning letters)
    from analytics.dunning import next_step as _next_step
    DUNNING_SOURCE = "analytics.dunning"
except ImportError:  # pragma: no cover - fallback when the dunning module is absent
    _LADDER = ((121, "collection agency"), (91, "hold"), (61, "escalation"), (31, "call"), (16, "second notice"),
               (1, "reminder"))
    DUNNING_SOURCE = "local ladder"

    def _next_step(days_past_due):
        if days_past_due is None or pd.isna(days_past_due):
            return None
        for low, name in _LADDER:
            if days_past_due >= low:
                return name
        return None

COLUMNS = [
    "rank", "customer_id", "customer_name", "collector_id", "currency", "band", "probability", "expected_loss_cents",
    "open_cents", "overdue_cents", "worst_days_past_due", "next_step", "reasons", "promises_due_today",
    "promised_today_cents", "broken_promises_30d", "open_disputes", "disputed_cents", "last_contact",
    "days_since_contact",
]


def _side_facts(conn: sa.Connection, as_of: dt.date, customer_ids: list[str]) -> pd.DataFrame:
    """Promises, disputes, last contact and undisputed worst days past due per customer (SQL)."""
    d = sa.literal(as_of, sa.Date)
    ids = list(customer_ids)
    from analytics.risk.features import promise_status

    ps = promise_status()
    prom = sa.select(
        ps.c.customer_id,
        sa.func.sum(sa.case((ps.c.promised_date == d, 1), else_=0)).label("promises_due_today"),
        sa.func.sum(sa.case((ps.c.promised_date == d, ps.c.amount_cents), else_=0)).label("promised_today_cents"),
        sa.func.sum(sa.case((sa.and_(ps.c.promised_date < d, days_between(ps.c.promised_date, d) <= 30,
                                     ps.c.kept == 0), 1), else_=0)).label("broken_promises_30d"),
    ).where(ps.c.made_on <= d, ps.c.customer_id.in_(ids)).group_by(ps.c.customer_id)

    disp = schema.disputes
    open_disp = sa.and_(disp.c.opened_date <= d, sa.or_(disp.c.resolved_date.is_(None), disp.c.resolved_date > d))
    dis = sa.select(disp.c.customer_id, sa.func.count().label("open_disputes"),
                    sa.func.sum(disp.c.amount_cents).label("disputed_cents")).where(
        open_disp, disp.c.customer_id.in_(ids)).group_by(disp.c.customer_id)

    act = schema.activities
    next_day = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    contact = sa.select(act.c.customer_id, sa.func.max(act.c.occurred_at).label("last_contact")).where(
        act.c.occurred_at < sa.literal(next_day, sa.DateTime), act.c.customer_id.in_(ids)).group_by(act.c.customer_id)

    oi = open_items(as_of, LedgerFilter(customers=tuple(ids)))
    disputed_items = sa.select(disp.c.invoice_id).where(open_disp)
    dun = sa.select(oi.c.customer_id, sa.func.max(oi.c.days_past_due).label("dunning_dpd")).where(
        oi.c.open_cents > 0, oi.c.days_past_due > 0, oi.c.invoice_id.not_in(disputed_items)).group_by(oi.c.customer_id)

    frame = pd.DataFrame({"customer_id": ids})
    for stmt, cols in ((prom, ["promises_due_today", "promised_today_cents", "broken_promises_30d"]),
                       (dis, ["open_disputes", "disputed_cents"]), (contact, ["last_contact"]),
                       (dun, ["dunning_dpd"])):
        part = pd.DataFrame(conn.execute(stmt).all(), columns=["customer_id"] + cols)
        part["customer_id"] = part["customer_id"].astype(str)
        frame = frame.merge(part, on="customer_id", how="left")
    for col in ("promises_due_today", "promised_today_cents", "broken_promises_30d", "open_disputes",
                "disputed_cents"):
        frame[col] = pd.to_numeric(frame[col]).fillna(0).astype("int64")
    last = pd.to_datetime(frame["last_contact"])
    frame["last_contact"] = last.dt.date
    frame["days_since_contact"] = (pd.Timestamp(as_of) - last.dt.normalize()).dt.days.astype("Int64")
    frame["dunning_dpd"] = pd.to_numeric(frame["dunning_dpd"])
    return frame


def worklist(conn_or_engine, as_of: dt.date, flt: LedgerFilter = NO_FILTER, model=None) -> pd.DataFrame:
    """Open accounts ranked by expected loss, with band, reasons, promises, disputes, contact and next step.

    Parameters
    ----------
    conn_or_engine : sqlalchemy.Engine or Connection
    as_of : datetime.date
    flt : LedgerFilter, optional
        E.g. ``LedgerFilter(collectors=("C1",))`` for one collector's portfolio.
    model : RiskModel, path or None
        None trains on the ledger's history before ``as_of`` (cached by ledger version).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS` (money in cents), one row per account, ``rank`` from 1.

    Example
    -------
    >>> wl = worklist(engine, dt.date(2026, 10, 31), LedgerFilter(collectors=("COL-01",)))  # doctest: +SKIP
    >>> wl[["customer_id", "band", "next_step"]].head(3)                                   # doctest: +SKIP
    """
    from analytics.db import connection
    from analytics.dunning import account_steps
    from analytics.risk.scoring import score_accounts

    with connection(conn_or_engine) as conn:
        scores = score_accounts(conn, as_of, flt, model=model)
        if scores.empty:
            return pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})
        side = _side_facts(conn, as_of, scores["customer_id"].tolist())
        steps = account_steps(conn, as_of, scores["customer_id"].tolist())  # the dunning procedure's step
    scores = scores.drop(columns=[c for c in side.columns if c != "customer_id" and c in scores.columns])
    frame = scores.merge(side, on="customer_id", how="left")
    frame["worst_days_past_due"] = frame["max_days_past_due"].astype("int64")
    frame["next_step"] = [steps.get(c) for c in frame["customer_id"]]
    frame = frame.sort_values(["expected_loss_cents", "probability", "customer_id"], ascending=[False, False, True],
                              kind="stable").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame[COLUMNS]


# ------------------------------------------------------------------------------------------------
# CLI: python -m analytics worklist --as-of D [--collector C] [--limit N] [--json]
# ------------------------------------------------------------------------------------------------
def configure_cli(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics worklist``."""
    parser.add_argument("--as-of", default=None, help="date YYYY-MM-DD (default: today)")
    parser.add_argument("--collector", action="append", default=[], help="collector id (repeatable)")
    parser.add_argument("--limit", type=int, default=None, help="print only the first N accounts")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=_run)


def _run(args) -> int:
    from analytics import db
    from analytics.errors import UserError
    from analytics.risk import money

    try:
        as_of = dt.date.fromisoformat(args.as_of) if args.as_of else dt.date.today()
    except ValueError:
        raise UserError(f"--as-of: not a date (YYYY-MM-DD): {args.as_of!r}") from None
    engine = db.connect(args.db)
    flt = LedgerFilter(collectors=tuple(args.collector))
    frame = worklist(engine, as_of, flt)
    if args.limit:
        frame = frame.head(args.limit)
    rows = []
    for r in frame.itertuples():
        rows.append({
            "rank": int(r.rank), "customer_id": r.customer_id, "customer_name": r.customer_name,
            "collector_id": r.collector_id, "band": r.band, "probability": float(r.probability),
            "expected_loss": money(r.expected_loss_cents), "open_amount": money(r.open_cents),
            "overdue_amount": money(r.overdue_cents), "worst_days_past_due": int(r.worst_days_past_due),
            "next_step": r.next_step, "reasons": r.reasons, "promises_due_today": int(r.promises_due_today),
            "broken_promises_30d": int(r.broken_promises_30d), "open_disputes": int(r.open_disputes),
            "disputed_amount": money(r.disputed_cents),
            "last_contact": r.last_contact.isoformat() if isinstance(r.last_contact, dt.date) else None,
            "days_since_contact": None if pd.isna(r.days_since_contact) else int(r.days_since_contact),
        })
    if args.json:
        print(json.dumps({"as_of": as_of.isoformat(), "dunning": DUNNING_SOURCE, "accounts": rows}, indent=2))
    else:
        for r in rows:
            print(f"{r['rank']:>3} {r['customer_id']:<16} {r['band']:<8} EL {r['expected_loss']:>12,.2f}  "
                  f"{r['next_step'] or '-':<17} {r['reasons']}")
    return 0
