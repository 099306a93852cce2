"""Per-account explanations: which drivers push a score up, in words a collector understands.

Method (computed here, no SHAP dependency): for each account and each *driver* (a group of related
features, e.g. all the lateness features), replace the driver's features by their typical value in
the training data and re-score. The drop in probability is that driver's contribution
(an occlusion / "what if this customer were ordinary on this" attribution, measured in log-odds so
that it stays visible for scores near 0 or 1). The top drivers with a
positive contribution (at least :data:`MIN_EFFECT`) are written out as text from the account's own
feature values, e.g. "pays 18 days late on average, up from 6 the quarter before",
"2 broken promises in 90 days", "62% of credit limit used".
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

DRIVERS: dict[str, list[str]] = {
    "lateness": ["avg_days_late", "avg_late_recent", "avg_late_prev", "last3_days_late", "late_share"],
    "severe": ["severe_share"],
    "promises": ["broken_promises_90", "promises_90"],
    "disputes": ["dispute_rate", "open_disputes", "open_disputed_cents", "inv_disputed"],
    "partial": ["partial_share"],
    "credit": ["credit_util"],
    "aging": ["max_dpd", "overdue_share", "share_31_60", "share_61_90", "share_90p"],
    "balance": ["open_cents", "avg_amount_cents"],
    "terms": ["terms_days", "inv_terms_days"],
    "channel": ["paperless"],
    "tenure": ["tenure_days", "n_items", "n_paid"],
    "region": ["region"],
    "amount": ["amount_cents", "amount_ratio"],
}
"""Driver name -> the features it groups."""

MIN_EFFECT = 0.05
"""A driver must raise the log-odds by at least 0.05 (about one percentage point near 20 %) to be named."""


def _money(cents, currency=None) -> str:
    text = f"{float(cents) / 100:,.2f}"
    return f"{currency} {text}" if isinstance(currency, str) and currency else text


def _num(row, key, default=float("nan")) -> float:
    try:
        v = float(row.get(key, default))
    except (TypeError, ValueError):
        return default
    return v


def _plural(n: float, word: str) -> str:
    n = int(round(n))
    return f"{n} {word}" + ("" if n == 1 else "s")


def reason_text(driver: str, row: dict) -> str | None:
    """Collector-readable sentence for one driver, from the account's own figures.

    Where the account's row carries the figures the worklist and Risk tables show
    (``max_days_past_due``, ``overdue_cents``, ``open_cents``, ``currency``) the sentence quotes
    those, so a reason never contradicts its row; otherwise the model's feature values are used.
    Drivers that say nothing a collector can act on (region, an ordinary history length, ordinary
    terms) return None and are skipped by :func:`reasons`.

    Parameters
    ----------
    driver : str
        A key of :data:`DRIVERS`.
    row : dict
        The account's features, plus optionally the table's figures named above.

    Returns
    -------
    str or None

    Example
    -------
    >>> reason_text("lateness", {"avg_days_late": 12, "avg_late_recent": 18, "avg_late_prev": 6})
    'pays 18 days late on average, up from 6 the quarter before'
    >>> reason_text("promises", {"broken_promises_90": 2})
    '2 broken promises in 90 days'
    >>> reason_text("aging", {"max_days_past_due": 341, "overdue_cents": 150000, "open_cents": 200000,
    ...                       "currency": "USD"})
    'USD 1,500.00 overdue (75% of the balance), oldest item 341 days past due'
    >>> reason_text("region", {"region": "EMEA"}) is None
    True
    """
    g = lambda k: _num(row, k)  # noqa: E731
    cur = row.get("currency")
    if driver == "lateness":
        avg, rec, prev, share = g("avg_days_late"), g("avg_late_recent"), g("avg_late_prev"), g("late_share")
        if not math.isnan(rec) and not math.isnan(prev) and rec - prev >= 3:
            return f"pays {rec:.0f} days late on average, up from {prev:.0f} the quarter before"
        if not math.isnan(avg) and avg >= 1:
            text = f"pays {avg:.0f} days late on average"
            if not math.isnan(share):
                text += f" ({share:.0%} of invoices late)"
            return text
        if not math.isnan(share) and share > 0:
            return f"{share:.0%} of invoices paid late"
        if math.isnan(avg):
            return "no payment history yet"
        return None
    if driver == "severe":
        share = g("severe_share")
        return None if math.isnan(share) or share <= 0 else f"{share:.0%} of invoices paid 30+ days late or written off"
    if driver == "promises":
        b = g("broken_promises_90")
        if not math.isnan(b) and b > 0:
            return f"{_plural(b, 'broken promise')} in 90 days"
        return None
    if driver == "disputes":
        k = g("open_disputes")
        if not math.isnan(k) and k > 0:
            return f"{_plural(k, 'open dispute')} ({_money(g('open_disputed_cents'), cur)})"
        if g("inv_disputed") == 1:
            return "invoice is disputed"
        rate = g("dispute_rate")
        return None if math.isnan(rate) or rate <= 0 else f"disputes {rate:.0%} of invoices"
    if driver == "partial":
        share = g("partial_share")
        return None if math.isnan(share) or share <= 0 else f"pays only part of the invoice on {share:.0%} of invoices"
    if driver == "credit":
        u = g("credit_util")
        if math.isnan(u):
            return "no credit limit on file"
        return f"{u:.0%} of credit limit used" + (" (over the limit)" if u > 1 else "")
    if driver == "aging":
        if "max_days_past_due" in row:  # the table's own figures
            dpd, od, bal = g("max_days_past_due"), g("overdue_cents"), g("open_cents")
            if math.isnan(dpd) or dpd <= 0 or math.isnan(od) or od <= 0:
                return "nothing overdue yet"
            share = f" ({od / bal:.0%} of the balance)" if bal > 0 else ""
            return f"{_money(od, cur)} overdue{share}, oldest item {dpd:.0f} days past due"
        dpd, od = g("max_dpd"), g("overdue_share")
        if not math.isnan(dpd) and dpd > 0:
            return f"oldest open item {dpd:.0f} days past due; {od:.0%} of the balance overdue"
        return "nothing overdue yet"
    if driver == "balance":
        return f"large open balance ({_money(g('open_cents'), cur)})"
    if driver == "terms":
        t = g("inv_terms_days")
        t = g("terms_days") if math.isnan(t) else t
        return None if math.isnan(t) or t < 45 else f"long payment terms ({t:.0f} days)"
    if driver == "channel":
        return "billed on paper, not electronically" if g("paperless") == 0 else None
    if driver == "tenure":
        months = g("tenure_days") / 30.4
        if not math.isnan(months) and months < 12:
            return f"new customer ({_plural(max(months, 1), 'month')})"
        if g("n_paid") < 10:
            return f"little payment history (only {_plural(g('n_paid'), 'invoice')} paid)"
        return None
    if driver == "region":
        return None
    if driver == "amount":
        r = g("amount_ratio")
        if not math.isnan(r):
            return None if r < 1.5 else f"invoice {r:.1f}x the customer's usual amount"
        return f"invoice amount {_money(g('amount_cents'), cur)}"
    return driver


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def contributions(estimator, X: pd.DataFrame, reference: dict, features: list[str]) -> pd.DataFrame:
    """Occlusion contributions in log-odds: logit p(row) − logit p(row with one driver set to its
    typical value). Log-odds keep the drivers visible when a score is close to 0 or 1.

    Parameters
    ----------
    estimator : object with ``predict_proba``
    X : pandas.DataFrame
        Feature rows.
    reference : dict
        Typical value per feature (from :func:`analytics.risk.models.reference_values`).
    features : list of str
        The estimator's features.

    Returns
    -------
    pandas.DataFrame
        One row per row of X, one column per driver that has features in ``features``.
    """
    drivers = {k: [f for f in v if f in features] for k, v in DRIVERS.items()}
    drivers = {k: v for k, v in drivers.items() if v}
    if not len(X):
        return pd.DataFrame(columns=list(drivers))
    X = X.reset_index(drop=True)
    base = _logit(estimator.predict_proba(X)[:, 1])
    blocks = []
    for feats in drivers.values():
        Z = X.copy()
        for f in feats:
            Z[f] = reference.get(f, np.nan)
        blocks.append(Z)
    big = pd.concat(blocks, ignore_index=True)
    p = _logit(estimator.predict_proba(big)[:, 1]).reshape(len(drivers), len(X))
    return pd.DataFrame((base[None, :] - p).T, columns=list(drivers))


def reasons(estimator, X: pd.DataFrame, reference: dict, features: list[str], top: int = 3,
            min_effect: float = MIN_EFFECT, facts: pd.DataFrame | None = None) -> list[str]:
    """Top drivers of each row's score, largest contribution first, as one "; "-separated sentence
    per row.

    Parameters
    ----------
    estimator : object with ``predict_proba``
    X : pandas.DataFrame
        Feature rows.
    reference : dict
        Typical value per feature.
    features : list of str
    top : int
        At most this many drivers are named.
    min_effect : float
        A driver must raise the log-odds by at least this much.
    facts : pandas.DataFrame, optional
        Aligned with X: the figures the table beside the reasons shows (``max_days_past_due``,
        ``overdue_cents``, ``open_cents``, ``currency``); the sentences quote them.

    Returns
    -------
    list of str
        "no strong risk signal" when no driver raises the probability by ``min_effect``.

    Example
    -------
    >>> from analytics.risk.models import HeuristicRiskScorer
    >>> X = pd.DataFrame({"max_dpd": [75.0], "overdue_share": [0.4], "broken_promises_90": [2.0]})
    >>> reasons(HeuristicRiskScorer().fit(X, None), X, {"max_dpd": 0, "overdue_share": 0,
    ...         "broken_promises_90": 0}, list(X.columns))
    ['oldest open item 75 days past due; 40% of the balance overdue; 2 broken promises in 90 days']
    """
    contrib = contributions(estimator, X, reference, features)
    rows = X.reset_index(drop=True).to_dict("records")
    if facts is not None:
        extra = facts.reset_index(drop=True).to_dict("records")
        rows = [{**row, **more} for row, more in zip(rows, extra)]
    out = []
    for i, row in enumerate(rows):
        c = contrib.iloc[i].sort_values(ascending=False) if len(contrib.columns) else pd.Series(dtype=float)
        texts = (reason_text(k, row) for k, v in c.items() if v >= min_effect)
        named = [t for t in texts if t][:top]
        out.append("; ".join(named) if named else "no strong risk signal")
    return out
