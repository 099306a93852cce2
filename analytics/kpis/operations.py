"""Operational KPIs: disputes, promises to pay, collectors and contact coverage — by subject.

The code lives in :mod:`analytics.kpis.disputes`, :mod:`analytics.kpis.promises` and
:mod:`analytics.kpis.collectors` (shared helpers in :mod:`analytics.kpis.common`; the business
definitions in :mod:`analytics.ledger`). This module keeps the historical import path
``analytics.kpis.operations`` working with the same public names.

Every figure is aggregated in the database (SQLAlchemy Core, identical on DuckDB, SQLite and
PostgreSQL); SQL returns integers only, and ratios are divided in Python, so the three databases give
bit-identical figures. One currency per figure (``DataFrame.attrs["currency"]``). Rates are
percentages (0–100), NaN where the denominator is 0. "Over N days past due" means
``days_past_due > N``.

Example
-------
>>> from analytics.kpis import operations as ops
>>> ops.working_days(dt.date(2024, 3, 1), dt.date(2024, 3, 31))
21
"""
from __future__ import annotations

import datetime as dt  # noqa: F401  (the example)

from analytics.kpis.collectors import collector_kpis, collector_measures, collector_trend, contact_coverage
from analytics.kpis.common import UNASSIGNED, working_days
from analytics.kpis.disputes import (DEFAULT_DISPUTE_TARGET_DAYS, dispute_stats, disputes_by_reason,
                                     disputes_over_target, open_disputes)
from analytics.kpis.promises import promise_stats, promises_detail, promises_due
from analytics.ledger import CONTACT_TYPES, DEFAULT_GRACE_DAYS

__all__ = [
    "CONTACT_TYPES", "DEFAULT_DISPUTE_TARGET_DAYS", "DEFAULT_GRACE_DAYS", "UNASSIGNED", "collector_kpis",
    "collector_measures", "collector_trend", "contact_coverage", "dispute_stats", "disputes_by_reason",
    "disputes_over_target", "open_disputes", "promise_stats", "promises_detail", "promises_due", "working_days",
]
