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


def km_quantiles(times: np.ndarray, events: np.ndarray, quantiles) -> np.ndarray:
    """Quantiles of the time to payment from a Kaplan-Meier estimate (``events`` False = censored);
    a quantile the data never reach (too many items still open) is the longest time observed × 1.5.

    Parameters
    ----------
    times : numpy.ndarray
        Days to payment (paid) or days observed so far (still open).
    events : numpy.ndarray of bool
        True = paid, False = still open (censored).
    quantiles : sequence of float

    Returns
    -------
    numpy.ndarray
        One time per quantile.

    Example
    -------
    >>> km_quantiles(np.array([1.0, 2.0, 3.0, 8.0]), np.array([True, True, False, True]), (0.5,)).tolist()
    [2.0]
    """
    if not times.size:
        return np.full(len(quantiles), 30.0)
    order = np.argsort(times, kind="stable")
    t, e = times[order], events[order]
    at_risk = t.size - np.arange(t.size)
    surv = np.cumprod(1.0 - e / at_risk)
    paid_share = 1.0 - surv
    out = []
    for q in quantiles:
        k = np.searchsorted(paid_share, q - 1e-9, side="left")  # 1 - 0.9 is 0.0999...: no float miss
        out.append(t[k] if k < t.size else t[-1] * 1.5)
    return np.array(out, dtype=float)


def late_payment_days(conn: sa.Connection, as_of: dt.date, items: pd.DataFrame,
                      quantiles=(0.1, 0.5, 0.9), min_items: int = 20) -> np.ndarray:
    """Days from ``as_of`` to payment of items already past due: quantiles of how much longer the
    customer's earlier items that were as late took (their own history when it holds ``min_items``
    such items, else every customer's), a Kaplan-Meier estimate in which items still open are
    censored at their age today.

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
    # an item still open at age a is censored at a (paid later than a, unknown when): Kaplan-Meier
    paid = np.isfinite(late)
    value = np.where(paid, late, seen)
    d = items["days_past_due"].to_numpy(dtype=float)
    item_cust = items["customer_id"].astype(str).to_numpy()
    starts = np.searchsorted(cust, item_cust, side="left")
    ends = np.searchsorted(cust, item_cust, side="right")
    out = np.zeros((len(d), len(quantiles)))
    pooled: dict[float, np.ndarray] = {}  # every customer's estimate depends on the days past due only
    for i, (a, b, dd) in enumerate(zip(starts, ends, d)):
        own = value[a:b] > dd
        if own.sum() >= min_items:
            out[i] = km_quantiles(value[a:b][own] - dd, paid[a:b][own], quantiles)
            continue
        if dd not in pooled:
            pool = value > dd
            pooled[dd] = km_quantiles(value[pool] - dd, paid[pool], quantiles)
        out[i] = pooled[dd]
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
    glob_paid, glob_risk = _paid_within(late, seen, d, horizon_days)
    p_all = (glob_paid + 1) / (glob_risk + 2)
    own_paid, own_risk = np.zeros(len(d)), np.zeros(len(d))
    # one customer at a time (their history is a contiguous run of the sorted arrays), all their items at once
    order = np.argsort(item_cust, kind="stable")
    bounds = np.flatnonzero(np.r_[True, item_cust[order][1:] != item_cust[order][:-1], True])
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        rows = order[lo:hi]
        a = np.searchsorted(cust, item_cust[rows[0]], side="left")
        b = np.searchsorted(cust, item_cust[rows[0]], side="right")
        own_paid[rows], own_risk[rows] = _paid_within(late[a:b], seen[a:b], d[rows], horizon_days)
    return (own_paid + PRIOR_ITEMS * p_all) / (own_risk + PRIOR_ITEMS)


def _paid_within(late: np.ndarray, seen: np.ndarray, days: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """For each ``days`` value dd: (items paid in (dd, dd + horizon], items at risk at dd), where an item is
    at risk at dd when it was paid later than dd or is still open and older than dd.

    Sorted counts (``searchsorted``) instead of a scan of the history per item: the same integers.

    Example
    -------
    >>> _paid_within(np.array([1.0, 5.0, np.inf]), np.array([np.inf, np.inf, 40.0]), np.array([0.0]), 30)
    (array([2.]), array([3.]))
    """
    # at risk: min(late, seen) > dd (a paid item has seen = inf, an open one late = inf)
    exposure = np.sort(np.minimum(late, seen))
    at_risk = exposure.size - np.searchsorted(exposure, days, side="right")
    paid = np.sort(late[np.isfinite(late)])
    within = np.searchsorted(paid, days + horizon, side="right") - np.searchsorted(paid, days, side="right")
    return within.astype(float), at_risk.astype(float)
