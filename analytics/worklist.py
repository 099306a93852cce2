"""The collector worklist: open accounts ranked by what a contact is worth, with what to do next and why.

For every account with a positive open balance at ``as_of`` (within the filter, e.g. one collector's
portfolio):

* ``contact_value_cents`` — the cash a contact today is expected to bring in within 30 days that would
  not come anyway, and ``response`` — how often this customer pays within 9 days of a contact
  (:func:`analytics.risk.policy.contact_values`: response × the overdue, undisputed amount not
  expected to be paid within 30 days without a contact). In the policy backtest on a generated
  ledger with known contact effects this ranking collects more than ranking by overdue amount or by
  expected loss (``python -m analytics risk policy-backtest``, README "Risk scores");
* ``probability``, ``expected_loss_cents`` (= probability × open balance), ``band`` and ``reasons``
  from :func:`analytics.risk.score_accounts` (model trained on the ledger's own history before
  ``as_of``, cached by ledger version; a documented heuristic when there is too little history);
* ``promises_due_today`` / ``promised_today_cents``: promises whose promised date is ``as_of``;
  ``broken_promises_30d``: promises due in the 30 days before ``as_of`` that are broken at ``as_of``
  (:func:`analytics.ledger.promise_outcomes`: the cash applied to the promised invoice or customer
  up to the promised date + 3 grace days fell short);
* ``open_disputes`` / ``disputed_cents``: disputes open at ``as_of``
  (:func:`analytics.ledger.open_disputes_at`);
* ``last_contact`` (date of the latest contact — call, email, letter, portal, escalation; a note is
  not a contact — on/before ``as_of``, :func:`analytics.ledger.last_contact`) and ``days_since_contact``;
* ``worst_days_past_due`` over all open items, and ``next_step`` — the dunning step for the worst
  days past due of the items NOT in dispute (:func:`analytics.dunning.next_step`: reminder 1–15,
  second notice 16–30, call 31–60, escalation 61–90, hold 91–120, collection agency 121+).

Rows are ordered by contact value (largest first), then expected loss, then probability, then
customer id: accounts nothing can be gained from today (nothing overdue, all disputed) follow in
expected-loss order.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import sqlalchemy as sa

from analytics.db import days_between, read_frame
from analytics.kpis.common import periods_table
from analytics.ledger import (NO_FILTER, LedgerFilter, last_contact, open_disputes_at, open_items,
                              promise_candidates, promise_outcomes)


DUNNING_SOURCE = "analytics.dunning"
_EPOCH = dt.date(1900, 1, 1)

COLUMNS = [
    "rank", "customer_id", "customer_name", "collector_id", "currency", "contact_value_cents", "response", "band",
    "probability", "expected_loss_cents", "open_cents", "overdue_cents", "worst_days_past_due", "next_step", "reasons", "promises_due_today",
    "promised_today_cents", "broken_promises_30d", "open_disputes", "disputed_cents", "last_contact",
    "days_since_contact",
]


def _side_facts(conn: sa.Connection, as_of: dt.date, customer_ids: list[str]) -> pd.DataFrame:
    """Promises, disputes, last contact and undisputed worst days past due per customer (SQL).

    Every fact uses the ledger's one definition: :func:`analytics.ledger.promise_outcomes` (evaluated at
    the end of ``as_of``), :func:`analytics.ledger.open_disputes_at` and
    :func:`analytics.ledger.last_contact` (a note is not a contact).
    """
    d = sa.literal(as_of, sa.Date)
    ids = list(customer_ids)
    scope = LedgerFilter(customers=tuple(ids))

    ps = promise_outcomes(promise_candidates(periods_table([(_EPOCH, as_of)]), scope))
    prom = sa.select(
        ps.c.customer_id,
        sa.func.sum(sa.case((ps.c.promised_date == d, 1), else_=0)).label("promises_due_today"),
        sa.func.sum(sa.case((ps.c.promised_date == d, ps.c.amount_cents), else_=0)).label("promised_today_cents"),
        sa.func.sum(sa.case((sa.and_(ps.c.promised_date < d, days_between(ps.c.promised_date, d) <= 30,
                                     ps.c.status == "broken"), 1), else_=0)).label("broken_promises_30d"),
    ).group_by(ps.c.customer_id)

    od = open_disputes_at(as_of, scope).subquery("open_disputes")
    dis = sa.select(od.c.customer_id, sa.func.count().label("open_disputes"),
                    sa.func.sum(od.c.amount_cents).label("disputed_cents")).group_by(od.c.customer_id)

    lc = last_contact(as_of, ids)
    contact = sa.select(lc.c.customer_id, lc.c.last_contact)

    oi = open_items(as_of, scope)
    disputed_items = sa.select(od.c.invoice_id)
    dun = sa.select(oi.c.customer_id, sa.func.max(oi.c.days_past_due).label("dunning_dpd")).where(
        oi.c.open_cents > 0, oi.c.days_past_due > 0, oi.c.invoice_id.not_in(disputed_items)).group_by(oi.c.customer_id)

    frame = pd.DataFrame({"customer_id": ids})
    for stmt, cols in ((prom, ["promises_due_today", "promised_today_cents", "broken_promises_30d"]),
                       (dis, ["open_disputes", "disputed_cents"]), (contact, ["last_contact"]),
                       (dun, ["dunning_dpd"])):
        part = read_frame(conn, stmt, ["customer_id"] + cols)
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
    """Open accounts ranked by contact value, with band, reasons, promises, disputes, contact and next step.

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
    from analytics.risk.policy import contact_values
    from analytics.risk.scoring import score_accounts

    with connection(conn_or_engine) as conn:
        scores = score_accounts(conn, as_of, flt, model=model)
        if scores.empty:
            return pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})
        values = contact_values(conn, as_of, flt)
        side = _side_facts(conn, as_of, scores["customer_id"].tolist())
        steps = account_steps(conn, as_of, scores["customer_id"].tolist())  # the dunning procedure's step
    scores = scores.drop(columns=[c for c in side.columns if c != "customer_id" and c in scores.columns])
    frame = scores.merge(side, on="customer_id", how="left").merge(
        values[["customer_id", "contact_value_cents", "response"]], on="customer_id", how="left")
    frame["contact_value_cents"] = frame["contact_value_cents"].fillna(0).astype("int64")
    frame["response"] = frame["response"].astype(float)
    frame["worst_days_past_due"] = frame["max_days_past_due"].astype("int64")
    frame["next_step"] = [steps.get(c) for c in frame["customer_id"]]
    return rank(frame)[COLUMNS]


def rank(frame: pd.DataFrame) -> pd.DataFrame:
    """Order accounts for the worklist and number them from 1: contact value, then expected loss, then
    probability (highest first), then customer id (also for a worklist put together from several
    currencies in one reporting currency, :func:`analytics.fx.worklist`).

    Parameters
    ----------
    frame : pandas.DataFrame
        With ``contact_value_cents, expected_loss_cents, probability, customer_id``.

    Returns
    -------
    pandas.DataFrame
        Sorted, index from 0, ``rank`` from 1.

    Example
    -------
    >>> rank(pd.DataFrame({"contact_value_cents": [1, 5], "expected_loss_cents": [0, 0], "probability": [0.1, 0.1],
    ...                    "customer_id": ["A", "B"]}))["customer_id"].tolist()
    ['B', 'A']
    """
    frame = frame.sort_values(["contact_value_cents", "expected_loss_cents", "probability", "customer_id"],
                              ascending=[False, False, False, True], kind="stable").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame
