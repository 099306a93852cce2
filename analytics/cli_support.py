"""What every command shares: parsing dates and filters, the default as-of date, opening the database and
printing a result as a table for people, as JSON (``--json``) or as CSV (``--csv``, to stdout or ``--out FILE``).

One parser per kind of option, so every command reads ``--as-of 2026-10-31`` the same way and a bad value is the
same one-line message with exit code 2 (``python -m analytics`` returns argparse's code instead of raising).

Conventions of the output
-------------------------
* **JSON** keeps the product's key convention: a ``*_cents`` column becomes the same name without the suffix, in
  currency units (2 decimals, rounded half-up); dates are ISO strings; NaN is ``null``.
* **CSV** is the same table as the JSON rows (one header line), with text that a spreadsheet would run as a
  formula (``= + - @``) prefixed by ``'``.
* **People** see money in currency units with thousands separators and the currency named, never cents.

Example
-------
>>> import argparse
>>> p = argparse.ArgumentParser()
>>> add_filter_arguments(p, period=True)
>>> args = p.parse_args(["--as-of", "2026-10-31", "--region", "EMEA"])
>>> ledger_filter(args).regions, period(args, args.as_of)
(('EMEA',), (datetime.date(2026, 8, 3), datetime.date(2026, 10, 31)))
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from typing import Any, Callable

import pandas as pd
import sqlalchemy as sa

from analytics.errors import UserError
from analytics.exports import safe_csv
from analytics.ledger import LedgerFilter

#: Days in the default period of the pages with a period picker ("Last 90 days").
DEFAULT_PERIOD_DAYS = 90


# ------------------------------------------------------------------------------------------------
# Option values
# ------------------------------------------------------------------------------------------------
def date_arg(text: str) -> dt.date:
    """The one command-line date parser (``argparse`` ``type=``): ``YYYY-MM-DD``, else a usage error.

    Parameters
    ----------
    text : str

    Returns
    -------
    datetime.date

    Example
    -------
    >>> date_arg("2026-10-31")
    datetime.date(2026, 10, 31)
    """
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def month_arg(text: str) -> str:
    """A command-line month ``YYYY-MM`` (``argparse`` ``type=``), returned as given.

    Parameters
    ----------
    text : str

    Returns
    -------
    str

    Example
    -------
    >>> month_arg("2025-01")
    '2025-01'
    """
    try:
        dt.date.fromisoformat(f"{text.strip()}-01")
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a month (YYYY-MM): {text!r}") from None
    return text.strip()


def positive_int(text: str) -> int:
    """A whole number >= 1 (``argparse`` ``type=``).

    Parameters
    ----------
    text : str

    Returns
    -------
    int

    Example
    -------
    >>> positive_int("90")
    90
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value


# ------------------------------------------------------------------------------------------------
# Filters
# ------------------------------------------------------------------------------------------------
def add_filter_arguments(parser: argparse.ArgumentParser, *, period: bool = False,
                         as_of_help: str = "as-of date YYYY-MM-DD (default: the ledger's latest invoice or "
                                           "receipt date)") -> None:
    """Add the dashboard's sidebar filters to a command: ``--as-of``, ``--currency``, ``--business-unit``,
    ``--region``, ``--collector``, ``--customer`` (the last four repeatable) and, with ``period``, the page's
    period ``--from`` / ``--to``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    period : bool
        Also ``--from`` and ``--to`` (default: the 90 days ending at the as-of date, as the pages).
    as_of_help : str

    Returns
    -------
    None

    Example
    -------
    >>> p = argparse.ArgumentParser(); add_filter_arguments(p)
    >>> p.parse_args(["--collector", "C01", "--collector", "C02"]).collector
    ['C01', 'C02']
    """
    parser.add_argument("--as-of", type=date_arg, default=None, help=as_of_help)
    parser.add_argument("--currency", default=None, help="currency (default: the ledger's main currency)")
    parser.add_argument("--business-unit", action="append", default=[], metavar="X", help="repeatable")
    parser.add_argument("--region", action="append", default=[], metavar="R", help="repeatable")
    parser.add_argument("--collector", action="append", default=[], metavar="C", help="repeatable")
    parser.add_argument("--customer", action="append", default=[], metavar="ID", help="repeatable")
    if period:
        parser.add_argument("--from", dest="start", type=date_arg, default=None,
                            help=f"first day of the period (default: {DEFAULT_PERIOD_DAYS} days ending at --to)")
        parser.add_argument("--to", dest="end", type=date_arg, default=None,
                            help="last day of the period (default: the as-of date)")


def ledger_filter(args: argparse.Namespace) -> LedgerFilter:
    """The :class:`~analytics.ledger.LedgerFilter` of :func:`add_filter_arguments`' options.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    LedgerFilter
        Currency upper-cased; empty options mean "no restriction".

    Example
    -------
    >>> ledger_filter(argparse.Namespace(currency="eur", business_unit=[], region=[], collector=["C1"],
    ...                                  customer=[])).currencies
    ('EUR',)
    """
    return LedgerFilter(business_units=tuple(getattr(args, "business_unit", ()) or ()),
                        regions=tuple(getattr(args, "region", ()) or ()),
                        currencies=(args.currency.strip().upper(),) if getattr(args, "currency", None) else (),
                        collectors=tuple(getattr(args, "collector", ()) or ()),
                        customers=tuple(getattr(args, "customer", ()) or ()))


def check_filter(conn: sa.Connection, flt: LedgerFilter) -> None:
    """Refuse a filter value the ledger does not know (a typo would otherwise print an empty report).

    Parameters
    ----------
    conn : sqlalchemy.Connection
    flt : LedgerFilter

    Returns
    -------
    None

    Raises
    ------
    UserError
        Naming the option and the value, and what the ledger has.

    Example
    -------
    >>> check_filter(conn, LedgerFilter(regions=("Mars",)))  # doctest: +SKIP
    Traceback (most recent call last):
    UserError: --region 'Mars': no customer in that region (the ledger has: EMEA, NA)
    """
    from analytics import schema

    cust, inv = schema.customers, schema.invoices
    checks = (("--currency", flt.currencies, inv.c.currency, "no document in that currency"),
              ("--business-unit", flt.business_units, cust.c.business_unit, "no customer in that business unit"),
              ("--region", flt.regions, cust.c.region, "no customer in that region"),
              ("--collector", flt.collectors, cust.c.collector_id, "no customer assigned to that collector"),
              ("--customer", flt.customers, cust.c.id, "no such customer"))
    for option, values, column, reason in checks:
        if not values:
            continue
        known = {str(v) for v in conn.execute(sa.select(column).distinct()).scalars() if v is not None}
        for value in values:
            if value not in known:
                shown = ", ".join(sorted(known)[:12]) + (", ..." if len(known) > 12 else "")
                raise UserError(f"{option} {value!r}: {reason} (the ledger has: {shown or 'none'})")


# ------------------------------------------------------------------------------------------------
# Dates
# ------------------------------------------------------------------------------------------------
def default_as_of(conn: sa.Connection) -> dt.date:
    """The as-of date of a command run without ``--as-of``: the ledger's latest invoice or receipt date
    (today for an empty ledger). Every command asks here, so the rule is in one place.

    Parameters
    ----------
    conn : sqlalchemy.Connection

    Returns
    -------
    datetime.date

    Example
    -------
    >>> default_as_of(conn)  # doctest: +SKIP
    datetime.date(2026, 10, 31)
    """
    from analytics.ledger import default_as_of as ledger_default

    return ledger_default(conn)


def as_of(conn: sa.Connection, args: argparse.Namespace) -> dt.date:
    """``--as-of`` if given, else :func:`default_as_of`.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    args : argparse.Namespace

    Returns
    -------
    datetime.date

    Example
    -------
    >>> as_of(conn, argparse.Namespace(as_of=dt.date(2026, 1, 31)))  # doctest: +SKIP
    datetime.date(2026, 1, 31)
    """
    return getattr(args, "as_of", None) or default_as_of(conn)


def period(args: argparse.Namespace, as_of_date: dt.date, days: int = DEFAULT_PERIOD_DAYS) -> tuple[dt.date, dt.date]:
    """``(--from, --to)``: by default the ``days`` (90) days ending at the as-of date (the pages' default period).

    Parameters
    ----------
    args : argparse.Namespace
        With ``start`` and ``end`` (``--from`` / ``--to``), either may be None.
    as_of_date : datetime.date
    days : int

    Returns
    -------
    tuple of datetime.date
        ``(start, end)``, both included.

    Raises
    ------
    UserError
        When the period starts after it ends.

    Example
    -------
    >>> period(argparse.Namespace(start=None, end=None), dt.date(2026, 10, 31))
    (datetime.date(2026, 8, 3), datetime.date(2026, 10, 31))
    """
    end = getattr(args, "end", None) or as_of_date
    start = getattr(args, "start", None) or end - dt.timedelta(days=days - 1)
    if start > end:
        raise UserError(f"--from {start.isoformat()} is after --to {end.isoformat()}")
    return start, end


# ------------------------------------------------------------------------------------------------
# Database
# ------------------------------------------------------------------------------------------------
def open_engine(args: argparse.Namespace) -> sa.Engine:
    """The database of ``--db`` (or ``$AR_DB_URL``), migrated; a URL that cannot be opened is a
    :class:`~analytics.errors.UserError` naming it.

    Parameters
    ----------
    args : argparse.Namespace
        With ``db`` (None: the default URL).

    Returns
    -------
    sqlalchemy.Engine

    Example
    -------
    >>> engine = open_engine(argparse.Namespace(db="sqlite://"))
    """
    from analytics import db

    url = getattr(args, "db", None)
    try:
        return db.connect(url)
    except sa.exc.SQLAlchemyError as exc:
        raise UserError(f"cannot open database {url or db.default_url()}: {exc.__class__.__name__}: "
                        f"{str(exc).splitlines()[0]}") from None


def run_on_ledger(args: argparse.Namespace, fn: Callable[[sa.Connection], Any]) -> Any:
    """Open the database, run ``fn(conn)`` on one connection, close everything.

    Parameters
    ----------
    args : argparse.Namespace
    fn : callable
        Called with the connection.

    Returns
    -------
    any
        What ``fn`` returned.

    Example
    -------
    >>> run_on_ledger(argparse.Namespace(db="sqlite://"), lambda conn: 1)
    1
    """
    engine = open_engine(args)
    try:
        with engine.connect() as conn:
            return fn(conn)
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------------------
# Output
# ------------------------------------------------------------------------------------------------
def add_output_arguments(parser: argparse.ArgumentParser, *, csv: bool = True) -> None:
    """``--json``, ``--csv`` and ``--out FILE`` (where the chosen output goes; default stdout).

    Parameters
    ----------
    parser : argparse.ArgumentParser
    csv : bool
        Offer ``--csv`` (commands without a table leave it out).

    Returns
    -------
    None

    Example
    -------
    >>> p = argparse.ArgumentParser(); add_output_arguments(p)
    >>> p.parse_args(["--csv", "--out", "x.csv"]).out
    'x.csv'
    """
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON object")
    if csv:
        fmt.add_argument("--csv", action="store_true", help="print the table as CSV")
    parser.add_argument("--out", default=None, metavar="FILE", help="write the output to FILE instead of stdout")


def units(cents) -> float | None:
    """Integer cents -> currency units, 2 decimals rounded half-up (None/NaN stay None).

    Parameters
    ----------
    cents : int or None

    Returns
    -------
    float or None

    Example
    -------
    >>> units(123455), units(None)
    (1234.55, None)
    """
    from analytics.kpis import to_units

    if cents is None or (isinstance(cents, float) and math.isnan(cents)) or cents is pd.NA:
        return None
    return to_units(int(cents))


def money(cents, currency: str | None = None) -> str:
    """Money for people: currency units with thousands separators and the currency, never cents.

    Parameters
    ----------
    cents : int or None
    currency : str, optional

    Returns
    -------
    str
        ``-`` when missing.

    Example
    -------
    >>> money(123456789, "USD"), money(-5, "EUR"), money(None)
    ('USD 1,234,567.89', 'EUR -0.05', '-')
    """
    value = units(cents)
    if value is None:
        return "-"
    return f"{currency} {value:,.2f}" if currency else f"{value:,.2f}"


def _plain(value: Any) -> Any:
    """A JSON-ready scalar: numpy -> Python, dates -> ISO, NaN/NaT/NA -> None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else value.isoformat()
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict]:
    """The rows of an analytics frame with the product's JSON conventions: ``x_cents`` -> ``x`` in
    currency units, dates ISO, missing values None.

    Parameters
    ----------
    frame : pandas.DataFrame

    Returns
    -------
    list of dict

    Example
    -------
    >>> records(pd.DataFrame({"customer_id": ["K1"], "open_cents": [12345]}))
    [{'customer_id': 'K1', 'open': 123.45}]
    """
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({(k[: -len("_cents")] if str(k).endswith("_cents") else str(k)):
                    (units(v) if str(k).endswith("_cents") else _plain(v)) for k, v in row.items()})
    return out


def emit(args: argparse.Namespace, payload: dict, table: pd.DataFrame, text: Callable[[], str]) -> int:
    """Print a command's result: ``payload`` with ``--json``, ``table`` with ``--csv`` (its JSON rows as
    CSV), else ``text()`` for people; to ``--out FILE`` when given.

    Parameters
    ----------
    args : argparse.Namespace
        With ``json``, ``csv`` and ``out`` (:func:`add_output_arguments`).
    payload : dict
        JSON-ready object (see :func:`records`).
    table : pandas.DataFrame
        The main table of the result (analytics frame, ``*_cents`` columns allowed).
    text : callable
        Builds the human-readable text.

    Returns
    -------
    int
        0.

    Example
    -------
    >>> ns = argparse.Namespace(json=False, csv=True, out=None)
    >>> emit(ns, {}, pd.DataFrame({"a_cents": [100]}), str)
    a
    1.0
    0
    """
    if getattr(args, "json", False):
        body = json.dumps(payload, indent=2, default=_plain) + "\n"
    elif getattr(args, "csv", False):
        rows = records(table)
        columns = [k[: -len("_cents")] if str(k).endswith("_cents") else str(k) for k in table.columns]
        body = safe_csv(pd.DataFrame(rows, columns=columns))  # formula-like text made inert
    else:
        body = text().rstrip("\n") + "\n"
    if getattr(args, "out", None):
        try:
            with open(args.out, "w", encoding="utf-8", newline="") as fh:
                fh.write(body)
        except OSError as exc:
            raise UserError(f"--out {args.out}: cannot write ({exc.strerror})") from None
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(body)
    return 0


def text_table(frame: pd.DataFrame, columns: dict[str, str], currency: str | None = None,
               limit: int | None = None) -> str:
    """A plain-text table for people: ``columns`` maps a frame column to its header; ``*_cents`` columns
    are shown in currency units with separators (the header names the currency). Without ``currency``, a
    frame with a ``currency`` column names its one currency, or shows that column when there are several.

    Parameters
    ----------
    frame : pandas.DataFrame
    columns : dict of str to str
        Frame column -> header, in the order shown.
    currency : str, optional
    limit : int, optional
        At most this many rows (then a line says how many more there are).

    Returns
    -------
    str

    Example
    -------
    >>> print(text_table(pd.DataFrame({"customer_id": ["K1"], "open_cents": [123456]}),
    ...                  {"customer_id": "Customer", "open_cents": "Open"}, "USD"))
    Customer  Open (USD)
    K1          1,234.56
    """
    if currency is None and "currency" in frame.columns:
        found = frame["currency"].dropna().unique()
        if len(found) == 1:
            currency = str(found[0])
        elif "currency" not in columns:  # several currencies: name each row's, before its first amount
            keys = list(columns)
            at = next((i for i, k in enumerate(keys) if k.endswith("_cents")), len(keys))
            columns = {**{k: columns[k] for k in keys[:at]}, "currency": "Currency",
                       **{k: columns[k] for k in keys[at:]}}
    shown = frame.head(limit) if limit else frame
    headers, cells, right = [], [], []
    for col, header in columns.items():
        values = shown[col] if col in shown.columns else pd.Series([None] * len(shown))
        if col.endswith("_cents"):
            headers.append(f"{header} ({currency})" if currency else header)
            cells.append([money(v) for v in values])
            right.append(True)
        else:
            headers.append(header)
            cells.append(["-" if _plain(v) is None else (f"{v:,.1f}" if isinstance(_plain(v), float) else str(_plain(v)))
                          for v in values])
            right.append(pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype))
    widths = [max([len(h)] + [len(c) for c in col]) for h, col in zip(headers, cells)]
    lines = ["  ".join(h.rjust(w) if r else h.ljust(w) for h, w, r in zip(headers, widths, right)).rstrip()]
    for i in range(len(shown)):
        lines.append("  ".join(col[i].rjust(w) if r else col[i].ljust(w)
                               for col, w, r in zip(cells, widths, right)).rstrip())
    if limit and len(frame) > limit:
        lines.append(f"... {len(frame) - limit:,} more rows (--csv or --json for all)")
    if not len(shown):
        lines.append("(none)")
    return "\n".join(lines)
