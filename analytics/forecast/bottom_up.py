"""Bottom-up forecast: the open invoices at as-of, each spread over the coming days by its predicted
payment-date distribution, less the expected non-payment, plus the receipts of invoices not yet issued.

Method (all amounts in cents, one currency)
-------------------------------------------
1. **Days-to-pay distribution per customer, non-payment included** (amount-weighted Kaplan–Meier).
   From the customer's invoices due in the lookback window (365 days), the cash received ``d`` = receipt
   date − due date days after the due date (only cash received *and applied* by as-of) and the amount
   still at risk on each day ``d`` (invoices aged at least ``d`` at as-of, net of credit memos and
   deductions, less what they had paid before ``d``; write-offs stay at risk: they are unpaid). Both are
   aggregated in SQL by customer, payment day and age (:func:`analytics.forecast.data.load_history`).
   Daily hazard ``h(d) = paid(d) / at_risk(d)``, blended with the pooled hazard of all customers:
   ``(n_c(d)·h_c + k·h_pooled) / (n_c(d) + k)``, ``n_c(d)`` = amount at risk in average-invoice units,
   ``k = prior_weight`` (a customer with little history — or none — follows the pool). Then
   ``f_c(d) = h(d)·Π_{u<d}(1 − h(u))`` up to ``follow_up`` = 120 days, and ``U_c = Π(1 − h)`` is the share
   never paid within it (written off, still open, or later). Invoices are weighted ``0.5^(age/90 days)``
   so a customer who stopped paying recently is seen as such.
2. **Unapplied cash** received by as-of comes off the customer's oldest open items first.
3. **Each open item** (grouped by customer and due date) is ``p`` days past due at as-of (negative when
   not yet due). It has not been paid by day ``p``, so: ``S = Σ_{d>p} f_c(d)``; probability of being
   collected ``P = S / (S + U_c)`` (so it falls as the item ages; an item older than every payment seen
   has ``P = 0``); expected cash on day ``t`` after as-of ``open · f_c(p + t) / (S + U_c)``.
4. **New sales.** Weekly invoicing is expected to continue at the mean of the last ``sales_window`` weeks;
   each day's invoices are paid by the pooled days-from-invoice distribution times ``1 − U_pooled``.
5. **Interval.** Each group is an all-or-nothing payment: variance ``Σ A_i² q(1 − q)`` for the week's
   probability ``q``; new sales add ``Σ_j s²·G(h, j)² + (s²/n)(Σ_j G(h, j))²`` (weekly sales sd ``s``,
   ``n`` weeks in the mean, ``G`` the weekly lag profile). Normal approximation at ``level``.

:class:`~analytics.forecast.inputs.BottomUpInputs` holds steps 1–4 as arrays, so the scenario levers in
:mod:`analytics.forecast.scenario` are pure functions of it. It lives in its own module so that this
module can apply the levers (:meth:`BottomUpForecaster.predict`) without an import cycle.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from scipy.stats import norm

from analytics.forecast.data import EARLY_DAYS, History
from analytics.forecast.inputs import BottomUpInputs
from analytics.forecast.scenario import apply_scenario

#: Days after as-of kept in the daily profiles beyond the horizon, so a lever can pull later cash earlier.
MARGIN_DAYS = 120


def _normalise(v: np.ndarray) -> np.ndarray:
    total = v.sum()
    return v / total if total > 0 else v


class BottomUpForecaster:
    """Receipts from the open items and expected new sales (see module docstring).

    Parameters
    ----------
    prior_weight : float
        ``k`` in the blend of a customer's own days-to-pay histogram with the pooled one.
    sales_window : int
        Weeks of past invoicing averaged for the new-sales part.
    include_new_sales : bool
        Add receipts from invoices issued after as-of.
    level : float
        Central coverage of the interval (0.8 = 10th to 90th percentile).
    max_weeks : int
        Longest horizon :meth:`predict` supports.
    half_life : float or None
        Invoices in the payment curves are weighted ``0.5 ** (age / half_life)`` (age = days since due
        date at as-of), so a customer who stopped paying recently counts as such. None: equal weights.

    Example
    -------
    >>> from analytics.forecast.data import load_history
    >>> fc = BottomUpForecaster().fit(load_history(engine, dt.date(2013, 6, 30)))  # doctest: +SKIP
    >>> fc.predict(13)                                                             # doctest: +SKIP
    """

    name = "bottom_up"

    def __init__(self, prior_weight: float = 5.0, sales_window: int = 13, include_new_sales: bool = True,
                 level: float = 0.8, max_weeks: int = 26, half_life: float | None = 90.0):
        self.prior_weight = prior_weight
        self.half_life = half_life
        self.sales_window = sales_window
        self.include_new_sales = include_new_sales
        self.level = level
        self.max_weeks = max_weeks

    # ------------------------------------------------------------------------------------------------
    def fit(self, history: History) -> "BottomUpForecaster":
        """Build :attr:`inputs_` from a :class:`History` (no database access)."""
        self.as_of_ = history.as_of
        self.inputs_ = build_inputs(history, prior_weight=self.prior_weight, sales_window=self.sales_window,
                                    include_new_sales=self.include_new_sales,
                                    n_days=7 * self.max_weeks + MARGIN_DAYS, half_life=self.half_life)
        return self

    def predict(self, weeks: int = 13, scenario=None) -> pd.DataFrame:
        """Weekly expected receipts with interval, in cents.

        Parameters
        ----------
        weeks : int
        scenario : analytics.forecast.scenario.Scenario, optional
            Levers applied to the fitted inputs first.

        Returns
        -------
        pandas.DataFrame
            ``week_start, expected, lower, upper`` (cents, float).
        """
        if weeks > self.max_weeks:
            raise ValueError(f"weeks={weeks} exceeds max_weeks={self.max_weeks}")
        inputs = self.inputs_
        if scenario is not None:
            inputs = apply_scenario(inputs, scenario)
        mean, var = expected_by_week(inputs, weeks)
        z = norm.ppf(0.5 + self.level / 2)
        sd = np.sqrt(var)
        return pd.DataFrame({
            "week_start": week_starts(self.as_of_, weeks),
            "expected": mean,
            "lower": np.maximum(mean - z * sd, 0.0),
            "upper": mean + z * sd,
        })


def week_starts(as_of: dt.date, weeks: int) -> list[dt.date]:
    """Start dates of forecast weeks 1..``weeks`` after ``as_of`` (week 1 starts the day after)."""
    return [as_of + dt.timedelta(days=1 + 7 * i) for i in range(weeks)]


def hazards(exposure: np.ndarray, cash: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Amount at risk and cash paid per day on the grid ``d = EARLY_DAYS .. F`` (Kaplan–Meier inputs).

    Parameters
    ----------
    exposure : numpy.ndarray
        ``(W,)``: basis cents of invoices by age (``as_of − due date``, grid index, clipped to F).
    cash : numpy.ndarray
        ``(W, W)``: cash cents by payment day ``d`` (rows) and age (columns).

    Returns
    -------
    (at_risk, paid) : numpy.ndarray, numpy.ndarray
        ``at_risk(d)`` = amount of invoices aged at least ``d`` less what they had paid before ``d``;
        ``paid(d)`` = cash paid on day ``d``.
    """
    W = len(exposure)
    before = np.cumsum(cash, axis=0) - cash  # paid before day d, by age
    mask = np.triu(np.ones((W, W), dtype=bool))  # age >= d
    at_risk = np.where(mask, exposure[None, :] - before, 0.0).sum(axis=1).clip(min=0.0)
    paid = np.where(mask, cash, 0.0).sum(axis=1)
    return at_risk, paid


def payment_curve(h: np.ndarray) -> tuple[np.ndarray, float]:
    """``f(d) = h(d) · Π_{u<d} (1 − h(u))`` and the share never paid by the grid's end ``U = Π (1 − h)``."""
    h = np.clip(h, 0.0, 1.0)
    surv = np.cumprod(1.0 - h)
    return h * np.concatenate([[1.0], surv[:-1]]), float(surv[-1]) if len(h) else 1.0


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _distributions(history: History, prior_weight: float, half_life: float | None = None):
    """Per-customer payment curves ``(f_c, U_c)`` and the pooled one, plus the pooled basis/gross ratio.

    The daily hazard is blended: ``h_c(d) = (n_c(d)·own + k·pooled) / (n_c(d) + k)`` where ``n_c(d)`` is the
    customer's amount at risk on day d in average-invoice units, so a customer with nothing at risk on a
    day (e.g. only young invoices) takes the pooled hazard there. ``half_life`` (days) down-weights
    invoices by age so recent behaviour counts more.
    """
    F = history.follow_up_days
    W = F - EARLY_DAYS + 1

    def decay(censor: pd.Series) -> np.ndarray:
        return 0.5 ** (censor.clip(lower=0).to_numpy() / half_life) if half_life else np.ones(len(censor))

    coh = history.cohort.assign(ci=history.cohort["censor"].clip(EARLY_DAYS, F) - EARLY_DAYS)
    pay = history.pay_days[history.pay_days["days"] <= F]
    pay = pay.assign(di=pay["days"].clip(lower=EARLY_DAYS) - EARLY_DAYS,
                     ci=pay["censor"].clip(EARLY_DAYS, F) - EARLY_DAYS)
    pooled_r, pooled_p = np.zeros(W), np.zeros(W)
    per: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    pay_groups = dict(list(pay.groupby("customer_id", sort=False)))
    for cust, g in coh.groupby("customer_id", sort=False):
        e = np.zeros(W)
        np.add.at(e, g["ci"].to_numpy(), g["basis_cents"].to_numpy() * decay(g["censor"]))
        cm = np.zeros((W, W))
        pg = pay_groups.get(cust)
        if pg is not None:
            np.add.at(cm, (pg["di"].to_numpy(), pg["ci"].to_numpy()), pg["cents"].to_numpy() * decay(pg["censor"]))
        at_risk, paid = hazards(e, cm)
        n = float(g["invoices"].sum())
        avg = float(g["basis_cents"].sum()) / n if n > 0 else 0.0
        per[cust] = (at_risk, paid, avg)
        pooled_r += at_risk
        pooled_p += paid
    if pooled_p.sum() > 0:
        h0 = _ratio(pooled_p, pooled_r)
    else:  # no payment seen at all: assume payment on the due date
        h0 = np.zeros(W)
        h0[-EARLY_DAYS] = 1.0
    pooled = payment_curve(h0)
    k = float(prior_weight)
    out = {}
    for cust, (at_risk, paid, avg) in per.items():
        if avg <= 0:
            continue
        n_d = at_risk / avg
        num, den = paid / avg + k * h0, n_d + k
        h = np.where(den > 0, num / np.where(den > 0, den, 1.0), h0)
        out[cust] = payment_curve(h)
    gross = float(coh["gross_cents"].sum())
    ratio = float(coh["basis_cents"].sum()) / gross if gross > 0 else 1.0
    return out, pooled, ratio


def _net_unapplied(groups: pd.DataFrame, unapplied: pd.DataFrame) -> pd.DataFrame:
    """Take each customer's unapplied cash off its open groups, oldest due date first."""
    if unapplied.empty or groups.empty:
        return groups
    left = unapplied.groupby("customer_id")["cents"].sum().to_dict()
    groups = groups.sort_values(["customer_id", "due_date"]).reset_index(drop=True)
    open_c = groups["open_cents"].to_numpy(copy=True)
    sq = groups["open_sq_cents"].to_numpy(copy=True)
    for i, cust in enumerate(groups["customer_id"]):
        cash = left.get(cust, 0.0)
        if cash <= 0 or open_c[i] <= 0:
            continue
        take = min(cash, open_c[i])
        ratio = (open_c[i] - take) / open_c[i]
        open_c[i] -= take
        sq[i] *= ratio ** 2
        left[cust] = cash - take
    groups["open_cents"], groups["open_sq_cents"] = open_c, sq
    return groups[groups["open_cents"] > 0].reset_index(drop=True)


def build_inputs(history: History, prior_weight: float = 5.0, sales_window: int = 13,
                 include_new_sales: bool = True, n_days: int = 7 * 26 + MARGIN_DAYS,
                 half_life: float | None = 90.0) -> BottomUpInputs:
    """Turn a :class:`History` into :class:`BottomUpInputs` (steps 1–4 of the module docstring).

    Example
    -------
    >>> inputs = build_inputs(load_history(engine, dt.date(2013, 6, 30)))  # doctest: +SKIP
    """
    dists, pooled, basis_ratio = _distributions(history, prior_weight, half_life)
    groups = _net_unapplied(history.open_groups.copy(), history.unapplied)
    profiles = np.zeros((len(groups), n_days))
    p_collect = np.zeros(len(groups))
    for i, row in enumerate(groups.itertuples(index=False)):
        f, u = dists.get(row.customer_id, pooled)
        p = (history.as_of - row.due_date).days  # days past due at as-of
        start = p + 1 - EARLY_DAYS  # grid index of d = p + 1
        start_c = max(start, 0)
        tail = f[start_c:] if start_c < len(f) else np.zeros(0)
        s = tail.sum()
        if s <= 0:
            continue  # older than every payment seen: nothing expected
        p_collect[i] = s / (s + u)
        lo = start_c - start  # > 0 when even the earliest payer (d = EARLY_DAYS) pays after day 1
        if lo < n_days:
            m = min(len(tail), n_days - lo)
            profiles[i, lo:lo + m] = tail[:m] / s
    groups["p_collect"] = p_collect
    r_pooled = 1.0 - (1.0 - pooled[1]) * basis_ratio

    sales_mean = sales_sd = 0.0
    weeks_used = 0
    lag = np.zeros(1)
    if include_new_sales and len(history.sales):
        recent = history.sales.to_numpy()[-sales_window:]
        weeks_used = len(recent)
        sales_mean = float(recent.mean())
        sales_sd = float(recent.std(ddof=1)) if weeks_used > 1 else 0.0
        if len(history.invoice_days) and history.invoice_days["cents"].clip(lower=0).sum() > 0:
            idays = history.invoice_days[history.invoice_days["cents"] > 0]
            lag = np.zeros(int(idays["days"].max()) + 1)
            np.add.at(lag, idays["days"].to_numpy(), idays["cents"].to_numpy())
            lag = _normalise(lag)
        else:  # no history: paid on the pooled due-date offset from a 30-day term
            lag = np.zeros(31)
            lag[30] = 1.0
    return BottomUpInputs(as_of=history.as_of, groups=groups, profiles=profiles, sales_mean=sales_mean,
                          sales_sd=sales_sd, sales_weeks=weeks_used, sales_lag=lag,
                          sales_collect=1.0 - r_pooled)


def _sales_week_matrix(inputs: BottomUpInputs, weeks: int) -> np.ndarray:
    """``G[h, j]``: expected receipts in week h per unit of invoicing in week j (invoiced evenly over the week)."""
    n = 7 * weeks
    daily = np.zeros((weeks, n))  # receipts on day t (0-based) per unit invoiced in week j
    lag = inputs.sales_lag
    for j in range(weeks):
        for s in range(7 * j, 7 * j + 7):  # issue day s (0 = day 1); paid on day s + k
            m = min(len(lag), n - s)
            if m > 0:
                daily[j, s:s + m] += lag[:m] / 7.0
    G = daily.reshape(weeks, weeks, 7).sum(axis=2).T  # [h, j]
    return G * inputs.sales_collect


def expected_by_week(inputs: BottomUpInputs, weeks: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected receipts and their variance per forecast week (cents, cents²).

    Parameters
    ----------
    inputs : BottomUpInputs
    weeks : int

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Both of length ``weeks``.
    """
    if 7 * weeks > inputs.n_days:
        raise ValueError("horizon longer than the inputs were built for")
    g = inputs.groups
    weekly_q = inputs.profiles[:, : 7 * weeks].reshape(len(g), weeks, 7).sum(axis=2)
    q = weekly_q * g["p_collect"].to_numpy()[:, None]
    mean = (g["open_cents"].to_numpy()[:, None] * q).sum(axis=0)
    var = (g["open_sq_cents"].to_numpy()[:, None] * q * (1 - q)).sum(axis=0)
    if inputs.sales_mean > 0:
        G = _sales_week_matrix(inputs, weeks)
        mean = mean + inputs.sales_mean * G.sum(axis=1)
        s2 = inputs.sales_sd ** 2
        var = var + s2 * (G ** 2).sum(axis=1) + (s2 / max(inputs.sales_weeks, 1)) * G.sum(axis=1) ** 2
    return mean, var
