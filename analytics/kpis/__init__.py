"""Accounts-receivable KPIs: the core set (aging, DSO family, CEI, roll rates, provision) as SQL.

The core API lives in :mod:`analytics.kpis.ar` and is re-exported here; collection-operations
metrics are in :mod:`analytics.kpis.disputes`, :mod:`analytics.kpis.promises` and
:mod:`analytics.kpis.collectors` (all re-exported by :mod:`analytics.kpis.operations`) and SLA tracking
in :mod:`analytics.kpis.sla` (import those by module path). The business concepts they share are in
:mod:`analytics.ledger`, the metric catalogue in :mod:`analytics.metrics`. Definitions:
``docs/kpi_definitions.md``.

CLI: ``python -m analytics kpis [--as-of D] [--window 90] [filters] [--json|--csv]``
(:mod:`analytics.page_commands`).

Example
-------
>>> import datetime as dt
>>> from analytics import db, kpis
>>> engine = db.connect("sqlite://")
>>> with engine.connect() as conn:
...     kpis.snapshot(conn, dt.date(2024, 3, 31))["ar_total"]
0.0
"""
from __future__ import annotations

from analytics.kpis.ar import (  # noqa: F401  (re-exported API)
    DEFAULT_BUCKETS,
    DEFAULT_EDGES,
    DEFAULT_WINDOW,
    SALES_DOC_TYPES,
    Bucket,
    aging,
    aging_detail,
    aging_trend,
    bad_debt_ratio,
    bucket_order_expr,
    cei,
    countback_dso,
    credit_sales,
    customers_with_balance,
    kpi_trend,
    last_month_ends,
    latest_date,
    main_currency,
    make_buckets,
    month_ends,
    payment_days,
    provision_matrix,
    resolve_currency,
    roll_rates,
    round_half_up,
    snapshot,
    to_units,
    unapplied_cash,
    write_off_ratio,
    write_offs,
)
from analytics.ledger import NO_FILTER, LedgerFilter, default_as_of, parse_date  # noqa: F401

__all__ = [
    "DEFAULT_BUCKETS", "DEFAULT_EDGES", "DEFAULT_WINDOW", "SALES_DOC_TYPES", "Bucket", "LedgerFilter", "NO_FILTER",
    "aging", "aging_detail", "aging_trend", "bad_debt_ratio", "bucket_order_expr", "cei", "countback_dso",
    "credit_sales", "customers_with_balance", "kpi_trend", "last_month_ends", "latest_date", "main_currency",
    "make_buckets", "month_ends", "payment_days", "provision_matrix", "resolve_currency", "roll_rates",
    "round_half_up", "snapshot", "to_units", "unapplied_cash", "write_off_ratio", "write_offs",
]

