"""How late items get paid, from the ledger's own history (no model): the share of items as late as
an open one that were paid within a horizon, and how much longer they took.

Both read every receivable's outcome before the scoring date (:func:`analytics.risk.features.invoice_outcomes`):
days late when paid; an item still open counts as unpaid up to its days past due today (so customers
who stop paying do not look like prompt payers); written-off items are left out.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import sqlalchemy as sa

PRIOR_ITEMS = 3.0
"""Weight (in items) of the all-customer share in each customer's "paid within the horizon anyway"."""


def _late_history(conn: sa.Connection, as_of: dt.date) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every receivable's lateness seen before ``as_of``, sorted by customer: ``(customer, days late
    when paid (inf if unpaid), days past due today if still open (inf if paid))``; written-off items
    are left out (their customers' items are no guide to when an item gets paid)."""
    from analytics.risk.features import invoice_outcomes

    out = invoice_outcomes(conn, as_of)
    paid = out["paid"].to_numpy(dtype=bool)
    still_open = ~paid & ~out["written_off"].to_numpy(dtype=bool) & (out["open_cents"].to_numpy() > 0)
    keep = paid | still_open
    late = np.where(paid, out["days_late"].to_numpy(dtype=float), np.inf)[keep]
    seen = np.where(paid, np.inf, out["days_due_to_cutoff"].to_numpy(dtype=float))[keep]
    cust = out["customer_id"].astype(str).to_numpy()[keep]
    order = np.argsort(cust, kind="stable")
    return cust[order], late[order], seen[order]


def late_payment_days(conn: sa.Connection, as_of: dt.date, items: pd.DataFrame,
                      quantiles=(0.1, 0.5, 0.9), min_items: int = 20) -> np.ndarray:
    """Days from ``as_of`` to payment of items already past due: quantiles of how much longer the
    customer's earlier items that were as late took (their own history when it holds ``min_items``
    such items, else every customer's), counting items still open as paid no earlier than today.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    as_of : datetime.date
    items : pandas.DataFrame
        ``customer_id, days_past_due`` (> 0).
    quantiles : tuple of float
    min_items : int

    Returns
    -------
    numpy.ndarray
        (n, len(quantiles)) days after ``as_of`` (at least 1).

    Example
    -------
    >>> late_payment_days(conn, dt.date(2026, 7, 1), pd.DataFrame({"customer_id": ["CUST-0000001"],
    ...                                                           "days_past_due": [20]}))  # doctest: +SKIP
    array([[ 3., 12., 41.]])
    """
    cust, late, seen = _late_history(conn, as_of)
    # an item still open at age a was paid a days late at the earliest: a lower bound, kept so that
    # customers who stop paying do not look like prompt payers
    value = np.where(np.isfinite(late), late, seen)
    d = items["days_past_due"].to_numpy(dtype=float)
    item_cust = items["customer_id"].astype(str).to_numpy()
    starts = np.searchsorted(cust, item_cust, side="left")
    ends = np.searchsorted(cust, item_cust, side="right")
    out = np.zeros((len(d), len(quantiles)))
    for i, (a, b, dd) in enumerate(zip(starts, ends, d)):
        own = value[a:b][value[a:b] > dd]
        pool = own if own.size >= min_items else value[value > dd]
        out[i] = np.quantile(pool - dd, quantiles) if pool.size else np.full(len(quantiles), 30.0)
    return np.maximum(out, 1.0)


def paid_anyway(conn: sa.Connection, as_of: dt.date, items: pd.DataFrame,
                horizon_days: int = 30) -> np.ndarray:
    """P(each open item is paid within ``horizon_days`` without a contact), given how late it is.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    as_of : datetime.date
        History = settlements dated before this date.
    items : pandas.DataFrame
        ``customer_id, days_past_due`` of the open items.
    horizon_days : int

    Returns
    -------
    numpy.ndarray
        One probability per row of ``items`` (see the module docstring).

    Example
    -------
    >>> paid_anyway(conn, dt.date(2026, 10, 1), pd.DataFrame({"customer_id": ["CUST-0000001"],
    ...                                                      "days_past_due": [20]}))  # doctest: +SKIP
    array([0.41])
    """
    cust, late, seen = _late_history(conn, as_of)
    d = items["days_past_due"].to_numpy(dtype=float)  # negative: not yet due (early payments count)
    item_cust = items["customer_id"].astype(str).to_numpy()
    starts = np.searchsorted(cust, item_cust, side="left")
    ends = np.searchsorted(cust, item_cust, side="right")

    def share(lt, sn, dd):
        at_risk = (lt > dd) & (sn > dd)  # paid later than dd, or still open and older than dd
        return float(((lt <= dd + horizon_days) & at_risk).sum()), float(at_risk.sum())

    glob = np.array([share(late, seen, x) for x in d]).reshape(-1, 2)
    p_all = (glob[:, 0] + 1) / (glob[:, 1] + 2)
    own = np.array([share(late[a:b], seen[a:b], x) for a, b, x in zip(starts, ends, d)]).reshape(-1, 2)
    return (own[:, 0] + PRIOR_ITEMS * p_all) / (own[:, 1] + PRIOR_ITEMS)
