"""The inputs of the bottom-up forecast, as arrays: what the scenario levers act on.

:func:`analytics.forecast.bottom_up.build_inputs` makes a :class:`BottomUpInputs`;
:mod:`analytics.forecast.scenario` changes it (pure functions); :class:`~analytics.forecast.bottom_up.BottomUpForecaster`
turns it into weekly cash. Both of those import this module and neither imports the other's caller, so there is
no import cycle.

Example
-------
>>> import numpy as np, pandas as pd
>>> inputs = BottomUpInputs(dt.date(2024, 6, 30), pd.DataFrame(), np.zeros((0, 10)), 0.0, 0.0, 0, np.zeros(10), 1.0)
>>> inputs.n_days
10
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd


@dataclasses.dataclass(frozen=True)
class BottomUpInputs:
    """The forecast inputs the levers act on (see module docstring). Arrays are never mutated.

    Attributes
    ----------
    as_of : datetime.date
    groups : pandas.DataFrame
        ``customer_id, due_date, open_cents, open_sq_cents, items, p_collect`` (one row per open
        customer/due-date group).
    profiles : numpy.ndarray
        ``(len(groups), n_days)``: probability that the group is paid on day ``t = 1..n_days`` after
        as-of, given it is collected (rows sum to <= 1; the rest falls after ``n_days``).
    sales_mean, sales_sd : float
        Expected weekly new invoicing and its week-to-week standard deviation (cents).
    sales_weeks : int
        Weeks the mean was taken over.
    sales_lag : numpy.ndarray
        Pooled probability that a new invoice is paid ``k = 0, 1, ...`` days after issue (sums to <= 1).
    sales_collect : float
        Share of new invoicing eventually collected.
    """

    as_of: dt.date
    groups: pd.DataFrame
    profiles: np.ndarray
    sales_mean: float
    sales_sd: float
    sales_weeks: int
    sales_lag: np.ndarray
    sales_collect: float

    @property
    def n_days(self) -> int:
        return self.profiles.shape[1]
