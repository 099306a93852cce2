"""Accounts-receivable KPIs: the core set (aging, DSO family, CEI, roll rates, provision) as SQL.

The core API lives in :mod:`analytics.kpis.ar` and is re-exported here; collection-operations
metrics are in :mod:`analytics.kpis.disputes`, :mod:`analytics.kpis.promises` and
:mod:`analytics.kpis.collectors` (all re-exported by :mod:`analytics.kpis.operations`) and SLA tracking
in :mod:`analytics.kpis.sla` (import those by module path). The business concepts they share are in
:mod:`analytics.ledger`, the metric catalogue in :mod:`analytics.metrics`. Definitions:
``docs/kpi_definitions.md``.

CLI::

    python -m analytics kpis [--db URL] [--as-of YYYY-MM-DD] [--window 90] [--currency CUR]
                             [--business-unit X] [--region R] [--collector C] [--json]

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

import argparse
import json

from analytics.errors import UserError
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
    "configure_cli",
]


_date = parse_date


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of days: {text!r}")
    return value


def configure_cli(parser: argparse.ArgumentParser) -> None:
    """Add the ``kpis`` command's arguments to ``parser`` and set its run function."""
    parser.add_argument("--as-of", type=_date, default=None,
                        help="as-of date YYYY-MM-DD (default: the ledger's last invoice or receipt date)")
    parser.add_argument("--window", type=_positive_int, default=DEFAULT_WINDOW,
                        help="DSO window N in days (default 90)")
    parser.add_argument("--currency", default=None, help="currency (default: the ledger's main currency)")
    parser.add_argument("--business-unit", action="append", default=[], metavar="X", help="repeatable")
    parser.add_argument("--region", action="append", default=[], metavar="R", help="repeatable")
    parser.add_argument("--collector", action="append", default=[], metavar="C", help="repeatable")
    parser.add_argument("--customer", action="append", default=[], metavar="ID", help="repeatable")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """Compute :func:`snapshot` for the CLI arguments and print it (JSON or a table)."""
    import sqlalchemy as sa

    from analytics import db

    flt = LedgerFilter(business_units=tuple(args.business_unit), regions=tuple(args.region),
                       currencies=(args.currency.upper(),) if args.currency else (),
                       collectors=tuple(args.collector), customers=tuple(args.customer))
    try:
        engine = db.connect(args.db)
    except sa.exc.SQLAlchemyError as exc:
        raise UserError(f"cannot open database {args.db or db.default_url()}: {exc.__class__.__name__}: "
                        f"{str(exc).splitlines()[0]}") from None
    try:
        with engine.connect() as conn:
            as_of = args.as_of or default_as_of(conn)
            snap = snapshot(conn, as_of, flt, window=args.window)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(snap))
    else:
        print(format_snapshot(snap))
    return 0


def _num(value, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:,.2f}{suffix}"


def format_snapshot(snap: dict) -> str:
    """A readable table of a :func:`snapshot` dict (what ``kpis`` prints without ``--json``); the labels
    come from the metric catalogue (:mod:`analytics.metrics`)."""
    from analytics import metrics

    cur = snap["currency"]
    lines = [f"AR KPIs as of {snap['as_of']} ({cur}, DSO window {snap['window']} days)", ""]
    suffix = {"days": " d", "pct": " %"}
    rows = []
    for key in metrics.snapshot_keys():
        m = metrics.get(key)
        if m.unit == "count":
            rows.append((m.label, f"{snap[key]:,}"))
        elif m.unit in ("money", "days", "pct"):
            rows.append((m.label, _num(snap[key], suffix.get(m.unit, ""))))
    width = max(len(k) for k, _ in rows)
    lines += [f"{k:<{width}}  {v:>18}" for k, v in rows]
    lines += ["", "Aging", *[f"{k:<{width}}  {_num(v):>18}" for k, v in snap["aging"].items()]]
    return "\n".join(lines)
