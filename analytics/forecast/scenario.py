"""Scenario levers: pure functions on :class:`~analytics.forecast.inputs.BottomUpInputs`.

* :func:`shift_days` — every customer pays ``n`` days later (``n < 0``: earlier). Cash pulled before
  day 1 lands on day 1; cash pushed past the profile's end leaves the forecast.
* :func:`change_collection_rate` — the collected share of open items and of new invoicing moves by
  ``pct`` percent (``-10`` = a tenth less collected), capped at 100%.
* :func:`delay_customer` — one customer's open items are paid ``weeks`` weeks later than predicted.

Each returns new inputs and never changes its argument. :func:`apply_scenario` applies a
:class:`Scenario` (all levers at once). With a top-down or combined method, :func:`analytics.forecast.forecast`
adds the bottom-up difference (scenario − base) to the chosen method's forecast.

Example
-------
>>> scn = Scenario(shift_days=10, collection_rate_pct=-5, delayed_customer="C042", delay_weeks=4)
>>> stressed = apply_scenario(inputs, scn)   # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses

import numpy as np

from analytics.errors import UserError
from analytics.forecast.inputs import BottomUpInputs


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A what-if on the forecast inputs.

    Parameters
    ----------
    shift_days : int
        Days-to-pay shift for everyone (+ later, − earlier).
    collection_rate_pct : float
        Change in the collected share, in percent of it (−10 = 10% less cash collected overall).
    delayed_customer : str, optional
        A customer whose payments slip by ``delay_weeks`` weeks.
    delay_weeks : int
    """

    shift_days: int = 0
    collection_rate_pct: float = 0.0
    delayed_customer: str | None = None
    delay_weeks: int = 0

    def is_base(self) -> bool:
        return (self.shift_days == 0 and self.collection_rate_pct == 0
                and (self.delayed_customer is None or self.delay_weeks == 0))


def _shift_rows(profiles: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    out = profiles.copy()
    if n == 0 or not rows.any():
        return out
    block = profiles[rows]
    shifted = np.zeros_like(block)
    if n > 0:
        if n < block.shape[1]:
            shifted[:, n:] = block[:, :-n]
    else:  # the first m days collapse onto day 1 (cash cannot arrive before tomorrow)
        m = min(-n, block.shape[1])
        shifted[:, : block.shape[1] - m] = block[:, m:]
        shifted[:, 0] += block[:, :m].sum(axis=1)
    out[rows] = shifted
    return out


def shift_days(inputs: BottomUpInputs, n: int) -> BottomUpInputs:
    """Everyone pays ``n`` days later (earlier if negative); new invoicing too.

    Parameters
    ----------
    inputs : BottomUpInputs
    n : int

    Returns
    -------
    BottomUpInputs

    Example
    -------
    >>> later = shift_days(inputs, 7)   # doctest: +SKIP
    """
    n = int(n)
    if n == 0:
        return inputs
    rows = np.ones(len(inputs.groups), dtype=bool)
    lag = inputs.sales_lag
    if n > 0:
        new_lag = np.concatenate([np.zeros(n), lag])
    else:
        m = -n
        new_lag = lag[m:].copy() if m < len(lag) else np.zeros(1)
        if len(new_lag) == 0:
            new_lag = np.zeros(1)
        new_lag[0] += lag[: min(m, len(lag))].sum()
    return dataclasses.replace(inputs, profiles=_shift_rows(inputs.profiles, rows, n), sales_lag=new_lag)


def change_collection_rate(inputs: BottomUpInputs, pct: float) -> BottomUpInputs:
    """Scale the collected share (of open items and new invoicing) by ``1 + pct/100``, within [0, 1].

    Example
    -------
    >>> worse = change_collection_rate(inputs, -10)   # doctest: +SKIP
    """
    if pct == 0:
        return inputs
    if pct < -100:
        raise UserError(f"collection-rate change {pct}% would collect less than nothing")
    factor = 1 + pct / 100.0
    groups = inputs.groups.copy()
    groups["p_collect"] = (groups["p_collect"] * factor).clip(0.0, 1.0)
    return dataclasses.replace(inputs, groups=groups, sales_collect=min(inputs.sales_collect * factor, 1.0))


def delay_customer(inputs: BottomUpInputs, customer_id: str, weeks: int) -> BottomUpInputs:
    """One customer's open items are paid ``weeks`` weeks later than predicted.

    Raises
    ------
    UserError
        If the customer has no open item in the forecast.

    Example
    -------
    >>> late = delay_customer(inputs, "C042", 4)   # doctest: +SKIP
    """
    rows = (inputs.groups["customer_id"] == customer_id).to_numpy()
    if not rows.any():
        raise UserError(f"customer {customer_id!r} has no open invoice to delay at {inputs.as_of}")
    if weeks == 0:
        return inputs
    return dataclasses.replace(inputs, profiles=_shift_rows(inputs.profiles, rows, 7 * int(weeks)))


def apply_scenario(inputs: BottomUpInputs, scenario: Scenario) -> BottomUpInputs:
    """All levers of ``scenario``: customer delay, then the general shift, then the collection rate."""
    out = inputs
    if scenario.delayed_customer and scenario.delay_weeks:
        out = delay_customer(out, scenario.delayed_customer, scenario.delay_weeks)
    out = shift_days(out, scenario.shift_days)
    return change_collection_rate(out, scenario.collection_rate_pct)


def largest_customers(inputs: BottomUpInputs, n: int = 10) -> list[tuple[str, float]]:
    """Customers with the most open cents in the forecast inputs (for the delayed-customer lever)."""
    s = inputs.groups.groupby("customer_id")["open_cents"].sum().sort_values(ascending=False)
    return [(str(c), float(v)) for c, v in s.head(n).items()]
