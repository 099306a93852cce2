"""Exchange rates and figures converted to one reporting currency.

Rates
-----
The ``exchange_rates`` table (revision 0008) holds daily reference rates as the European Central Bank
publishes them: units of ``currency`` per 1 EUR, keyed by (base, currency, date), stored exactly as an
integer ``rate × 10^10``. :func:`load_rates` reads the ECB's CSV files (``eurofxref-hist.csv``: a
``Date`` column then one column per currency, ``N/A`` or empty where there is no rate that day, a trailing
comma; and the one-day ``eurofxref.csv`` with its ``31 October 2026`` dates and padded cells).

* **Lookup** (:func:`rates_on`, :func:`rate`): the latest rate on or before the date, per currency; the
  rate date used is always stated. A rate older than :data:`MAX_RATE_AGE_DAYS` days before the date is
  refused (load current rates) rather than used silently.
* **Triangulation through EUR**: X → Y = (Y per EUR) / (X per EUR), kept as an exact fraction (no
  intermediate rounding); the stated rate date of a cross rate is the older of its two legs.
* **Conversion** (:func:`convert_cents`): cents × rate, rounded half-up (ties away from zero) to whole cents,
  once, at the end.

Converted KPIs
--------------
Every KPI function resolves exactly one currency (:func:`analytics.ledger.resolve_currency`), so a figure
in a reporting currency R is computed **per transaction currency c and combined here**, never by
rewriting a KPI query. All parts of a figure at a date D use the rate of D (closing rate; rate date
stated), so ratios move with collections, not with exchange rates:

* amounts (AR, current, overdue, over 90, credit sales, each aging bucket, unapplied cash):
  ``Σ_c round(amount_c × rate_c→R)`` (each currency's total converted and rounded, then added);
* ``DSO = AR_R / S_R × N``; ``BPDSO = Current_R / S_R × N``; ``ADD = DSO − BPDSO``;
  ``% current = Current_R / AR_R × 100``;
* ``CEI (month to date) = (AR_R(start − 1) + S_R(month to date) − AR_R(D)) / (AR_R(start − 1) +
  S_R(month to date) − Current_R(D)) × 100``, every part at D's rate;
* countback DSO walks the converted monthly sales (:func:`analytics.kpis.countback_dso`);
* counts (open items, customers with a balance) add up over currencies (a customer with items in two
  currencies counts once per currency, as an account).

Example
-------
>>> import datetime as dt
>>> convert_cents(10_000, Fraction(11723, 10000))
11723
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import io
import json
import math
import random
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Iterable

import pandas as pd
import sqlalchemy as sa

from analytics import db, schema
from analytics.errors import RowError, UserError, ValidationFailed
from analytics.kpis import ar as kar
from analytics.ledger import NO_FILTER, LedgerFilter, as_date, to_units

BASE = "EUR"
RATE_SCALE = schema.RATE_SCALE
#: A rate older than this many days before the date asked for is refused, not used.
MAX_RATE_AGE_DAYS = 31
er = schema.exchange_rates
inv = schema.invoices


# ------------------------------------------------------------------------------------------------
# Rates: parse, load, look up
# ------------------------------------------------------------------------------------------------
def _parse_day(text: str) -> dt.date | None:
    for fmt in ("%Y-%m-%d", "%d %B %Y", "%d %b %Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def parse_rates(text: str) -> tuple[list[tuple[dt.date, str, Decimal, int]], list[RowError]]:
    """Rows of an ECB reference-rate CSV: ``(date, currency, units per EUR, row)``, and the bad cells.

    Parameters
    ----------
    text : str
        The file's text: a ``Date`` column, then one column per ISO 4217 code (headers may be padded
        with spaces; an empty trailing column is ignored). ``N/A`` or an empty cell means no rate.

    Returns
    -------
    (list of (datetime.date, str, decimal.Decimal, int), list of RowError)
        Row numbers as a spreadsheet shows them (header = row 1).

    Example
    -------
    >>> parse_rates("Date,USD,GBP,\\n2026-10-30,1.0850,0.83500,\\n")[0][0]
    (datetime.date(2026, 10, 30), 'USD', Decimal('1.0850'), 2)
    """
    import csv

    lines = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not lines or not lines[0]:
        raise UserError("the exchange-rate file is empty: expected the ECB's CSV (Date,USD,JPY,...)")
    header = [h.strip() for h in lines[0]]
    if header[0].lower() != "date":
        raise UserError(f"the exchange-rate file's first column is {header[0]!r}, not 'Date': expected the "
                        f"ECB's CSV (Date,USD,JPY,...)")
    rows: list[tuple[dt.date, str, Decimal, int]] = []
    errors: list[RowError] = []
    codes: list[str | None] = []
    for h in header[1:]:
        if not h:
            codes.append(None)
        elif len(h) == 3 and h.isalpha() and h.isupper() and h != BASE:
            codes.append(h)
        else:
            raise UserError(f"column {h!r} of the exchange-rate file is not a currency code (three capital "
                            f"letters other than {BASE})")
    seen: set[tuple[dt.date, str]] = set()
    for number, cells in enumerate(lines[1:], start=2):
        cells = [c.strip() for c in cells]
        if not any(cells):
            continue
        day = _parse_day(cells[0])
        if day is None:
            errors.append(RowError(number, "Date", cells[0], "not a date (YYYY-MM-DD or 31 October 2026)"))
            continue
        for code, cell in zip(codes, cells[1:]):
            if code is None or cell in ("", "N/A", "-"):
                continue
            try:
                value = Decimal(cell)
            except InvalidOperation:
                errors.append(RowError(number, code, cell, "not a number"))
                continue
            if not value.is_finite() or value <= 0:
                errors.append(RowError(number, code, cell, "a rate must be a positive number"))
            elif value.as_tuple().exponent < -10:
                errors.append(RowError(number, code, cell, "more than 10 decimal places"))
            elif value * RATE_SCALE >= 2 ** 62:
                errors.append(RowError(number, code, cell, "too large for a rate"))
            elif (day, code) in seen:
                errors.append(RowError(number, code, cell, f"a second {code} rate for {day.isoformat()}"))
            else:
                seen.add((day, code))
                rows.append((day, code, value, number))
    return rows, errors


@dataclasses.dataclass(frozen=True)
class RatesLoad:
    """What :func:`load_rates` did: rates added, already present (same value), bad rows skipped."""

    added: int
    unchanged: int
    currencies: tuple[str, ...]
    first_date: dt.date | None
    last_date: dt.date | None
    errors: tuple[RowError, ...] = ()

    def summary(self) -> str:
        span = f" from {self.first_date} to {self.last_date}" if self.first_date else ""
        text = (f"exchange rates: {self.added:,} added, {self.unchanged:,} already loaded; "
                f"{len(self.currencies)} currencies{span}")
        if self.errors:
            text += f"; {len(self.errors)} bad row(s) skipped: " + "; ".join(str(e) for e in self.errors[:5])
        return text

    def to_dict(self) -> dict:
        return {"added": self.added, "unchanged": self.unchanged, "currencies": list(self.currencies),
                "first_date": self.first_date and self.first_date.isoformat(),
                "last_date": self.last_date and self.last_date.isoformat(),
                "errors": [dataclasses.asdict(e) for e in self.errors]}


def load_rates(engine: sa.Engine, source, *, skip_invalid: bool = False, file_name: str | None = None) -> RatesLoad:
    """Load an ECB reference-rate CSV into ``exchange_rates``, all or nothing, safe to repeat.

    A rate already loaded with the same value is skipped; one loaded with a different value is a row
    error ("conflicts with the loaded rate"), as is every bad cell (named by row, currency and value).

    Parameters
    ----------
    engine : sqlalchemy.Engine
    source : path, bytes or binary file-like (e.g. a Streamlit ``UploadedFile``)
    skip_invalid : bool
        Load the good rates and report the bad rows instead of refusing the file.
    file_name : str, optional
        Recorded as the rates' ``source``.

    Returns
    -------
    RatesLoad

    Raises
    ------
    ValidationFailed
        Bad rows and ``skip_invalid`` False: nothing written.

    Example
    -------
    >>> load_rates(engine, "eurofxref-hist.csv").added  # doctest: +SKIP
    1234
    """
    from analytics.instalments import read_upload

    db.require_writable(engine, "load exchange rates")
    data, name = read_upload(source)
    name = file_name or name or "rates.csv"
    rows, errors = parse_rates(data.decode("utf-8-sig", errors="replace"))
    added = unchanged = 0
    with db.writer_lock(engine), engine.begin() as conn:
        db.lock_ledger(conn)  # check-then-write: a second load at the same instant waits and finds these rows
        existing: dict[tuple[dt.date, str], int] = {}
        if rows:
            lo, hi = min(r[0] for r in rows), max(r[0] for r in rows)
            for r in conn.execute(sa.select(er.c.rate_date, er.c.currency, er.c.rate_scaled)
                                  .where(er.c.base == BASE, er.c.rate_date >= lo, er.c.rate_date <= hi)):
                existing[(as_date(r.rate_date), r.currency)] = int(r.rate_scaled)
        new = []
        for day, code, value, number in rows:
            scaled = int(value * RATE_SCALE)
            old = existing.get((day, code))
            if old is None:
                new.append({"base": BASE, "currency": code, "rate_date": day, "rate_scaled": scaled,
                            "source": name[:200]})
            elif old == scaled:
                unchanged += 1
            else:
                errors.append(RowError(number, code, str(value), f"conflicts with the loaded {code} rate of "
                                       f"{day.isoformat()} ({Fraction(old, RATE_SCALE).__float__():g})"))
        if errors and not skip_invalid:
            raise ValidationFailed(sorted(errors, key=lambda e: e.row), name)
        if new:
            db.bulk_insert(conn, er, new)
            added = len(new)
            db.bump_ledger_version(conn)
    days = [r[0] for r in rows]
    return RatesLoad(added, unchanged, tuple(sorted({r[1] for r in rows})), min(days, default=None),
                     max(days, default=None), tuple(errors))


def rates_on(conn: sa.Connection, on: dt.date, currencies: Iterable[str]) -> dict[str, tuple[Fraction, dt.date]]:
    """Units of each currency per EUR on ``on``: the latest rate dated on or before it (one query).

    EUR itself is 1 on ``on``. A currency without a rate, or whose latest rate is more than
    :data:`MAX_RATE_AGE_DAYS` days old, raises :class:`UserError` naming it and the date.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    on : datetime.date
    currencies : iterable of str

    Returns
    -------
    dict
        currency -> (rate as an exact Fraction, the rate's date).

    Example
    -------
    >>> rates_on(conn, dt.date(2026, 10, 31), ["USD"])  # doctest: +SKIP
    {'USD': (Fraction(217, 200), datetime.date(2026, 10, 30))}
    """
    on = as_date(on)
    wanted = sorted(set(currencies) - {BASE})
    out: dict[str, tuple[Fraction, dt.date]] = {BASE: (Fraction(1), on)} if BASE in set(currencies) else {}
    if not wanted:
        return out
    latest = (sa.select(er.c.currency, sa.func.max(er.c.rate_date).label("d"))
              .where(er.c.base == BASE, er.c.currency.in_(wanted), er.c.rate_date <= sa.literal(on, sa.Date))
              .group_by(er.c.currency).subquery("latest"))
    stmt = (sa.select(er.c.currency, er.c.rate_date, er.c.rate_scaled)
            .select_from(er.join(latest, sa.and_(er.c.currency == latest.c.currency, er.c.rate_date == latest.c.d)))
            .where(er.c.base == BASE))
    for r in conn.execute(stmt):
        out[r.currency] = (Fraction(int(r.rate_scaled), RATE_SCALE), as_date(r.rate_date))
    for code in wanted:
        if code not in out:
            raise UserError(f"no {code} exchange rate on or before {on.isoformat()}: load the ECB rates "
                            f"(python -m analytics load rates FILE, or the Data page)")
        age = (on - out[code][1]).days
        if age > MAX_RATE_AGE_DAYS:
            raise UserError(f"the latest {code} exchange rate on or before {on.isoformat()} is from "
                            f"{out[code][1].isoformat()}, {age} days earlier: load current rates")
    return out


@dataclasses.dataclass(frozen=True)
class Rate:
    """An exchange rate ``source`` → ``target`` at a date: target units per source unit, exact.

    ``rate_date`` is the date of the rate used (the older leg for a cross rate through EUR).
    """

    source: str
    target: str
    value: Fraction
    rate_date: dt.date

    def convert(self, cents: int) -> int:
        """``cents`` in ``source`` → cents in ``target``, half-up (see :func:`convert_cents`)."""
        return convert_cents(cents, self.value)

    def text(self, places: int = 6) -> str:
        """``1 GBP = 1.197605 EUR (rate of 2026-10-30)``."""
        return (f"1 {self.source} = {kar.round_half_up(self.value, places):.{places}f} {self.target} "
                f"(rate of {self.rate_date.isoformat()})")


def cross(table: dict[str, tuple[Fraction, dt.date]], source: str, target: str) -> Rate:
    """The ``source`` → ``target`` rate from EUR-based rates: (target per EUR) / (source per EUR).

    Parameters
    ----------
    table : dict
        :func:`rates_on` output holding both currencies (EUR needs no entry).
    source, target : str

    Returns
    -------
    Rate

    Example
    -------
    >>> d = dt.date(2026, 10, 30)
    >>> r = cross({"USD": (Fraction(108, 100), d), "GBP": (Fraction(9, 10), d)}, "GBP", "USD")
    >>> r.value, r.convert(100_00)
    (Fraction(6, 5), 12000)
    """
    if source == target:
        day = max((d for _, d in table.values()), default=dt.date.min)
        return Rate(source, target, Fraction(1), day)
    legs = [table[c] if c != BASE else (Fraction(1), None) for c in (source, target)]
    dates = [d for _, d in legs if d is not None]
    return Rate(source, target, legs[1][0] / legs[0][0], min(dates))


def rate(conn: sa.Connection, source: str, target: str, on: dt.date) -> Rate:
    """The ``source`` → ``target`` rate on ``on`` (latest on or before it, through EUR).

    Parameters
    ----------
    conn : sqlalchemy.Connection
    source, target : str
        ISO 4217 codes.
    on : datetime.date

    Returns
    -------
    Rate
        With the date of the rate used (the older leg's for a cross rate).

    Raises
    ------
    UserError
        No rate on or before ``on``, or the latest is more than :data:`MAX_RATE_AGE_DAYS` days old.

    Example
    -------
    >>> rate(conn, "GBP", "USD", dt.date(2026, 10, 31)).text()  # doctest: +SKIP
    '1 GBP = 1.200000 USD (rate of 2026-10-30)'
    """
    return cross(rates_on(conn, on, {source, target}), source, target)


def convert_cents(cents: int, value: Fraction) -> int:
    """Convert integer cents at an exact rate, rounded half-up (ties away from zero) to whole cents.

    Parameters
    ----------
    cents : int
    value : fractions.Fraction
        Target units per source unit.

    Returns
    -------
    int
        Cents in the target currency.

    Example
    -------
    >>> convert_cents(1, Fraction(1, 2)), convert_cents(-1, Fraction(1, 2)), convert_cents(3, Fraction(1, 2))
    (1, -1, 2)
    """
    return kar.cents_round(Fraction(int(cents)) * value)


# ------------------------------------------------------------------------------------------------
# Figures in a reporting currency
# ------------------------------------------------------------------------------------------------
def ledger_currencies(conn: sa.Connection, flt: LedgerFilter = NO_FILTER) -> list[str]:
    """The document currencies in ``flt``'s scope (its currency criterion ignored), sorted.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    flt : LedgerFilter, optional

    Returns
    -------
    list of str

    Example
    -------
    >>> ledger_currencies(conn)  # doctest: +SKIP
    ['EUR', 'GBP', 'USD']
    """
    flt = dataclasses.replace(flt or NO_FILTER, currencies=())
    stmt = flt.apply_to_invoices(sa.select(inv.c.currency).distinct())
    return sorted(r[0] for r in conn.execute(stmt))


def _per_currency(flt: LedgerFilter, code: str) -> LedgerFilter:
    return dataclasses.replace(flt or NO_FILTER, currencies=(code,))


def _rates_note(rates: dict[str, Rate]) -> dict:
    return {c: {"rate": float(r.value), "rate_date": r.rate_date.isoformat(), "text": r.text()}
            for c, r in sorted(rates.items()) if r.source != r.target}


def conversion_rates(conn: sa.Connection, on: dt.date, currencies: Iterable[str], report: str) -> dict[str, Rate]:
    """Each currency's rate into ``report`` on ``on`` (one query).

    Parameters
    ----------
    conn : sqlalchemy.Connection
    on : datetime.date
    currencies : iterable of str
    report : str

    Returns
    -------
    dict
        currency -> :class:`Rate` into ``report``.

    Example
    -------
    >>> conversion_rates(conn, dt.date(2026, 10, 31), ["USD", "GBP"], "EUR")["GBP"].rate_date  # doctest: +SKIP
    datetime.date(2026, 10, 30)
    """
    currencies = list(currencies)
    table = rates_on(conn, on, set(currencies) | {report})
    return {c: cross(table, c, report) for c in currencies}


def _monthly_sales(conn: sa.Connection, upto: dt.date, flt: LedgerFilter) -> dict[tuple[int, int], int]:
    """Credit sales per (year, month) up to ``upto`` (the countback walk's input), one currency."""
    first = conn.execute(flt.apply_to_invoices(sa.select(sa.func.min(inv.c.invoice_date)))).scalar()
    if first is None or as_date(first) > upto:
        return {}
    from analytics.kpis.common import month_periods, periods_table
    from analytics.ledger import credit_sales

    periods = periods_table(month_periods(as_date(first).replace(day=1), upto))
    out = {}
    for r in conn.execute(credit_sales(None, upto, flt, periods=periods)):
        end = as_date(r[0])
        out[(end.year, end.month)] = int(r[-1] or 0)
    return out


def snapshot(conn: sa.Connection, as_of: dt.date, flt: LedgerFilter, report: str,
             window: int = kar.DEFAULT_WINDOW, buckets=kar.DEFAULT_BUCKETS) -> dict:
    """:func:`analytics.kpis.snapshot` for all currencies in ``flt``'s scope, converted into ``report``.

    Each currency's parts come from the one-currency KPI functions and are combined as the module
    docstring says (amounts converted and added; ratios recomputed from converted numerators and
    denominators), all at the rate of ``as_of``.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    as_of : datetime.date
    flt : LedgerFilter
        Its currency criterion is ignored: every currency is converted.
    report : str
        Reporting currency (ISO code).
    window : int
    buckets : optional

    Returns
    -------
    dict
        The keys of :func:`analytics.kpis.snapshot` (``currency`` = ``report``) plus ``converted`` True,
        ``rate_date`` (the oldest rate date used) and ``rates`` {currency: {rate, rate_date, text}}.

    Example
    -------
    >>> snapshot(conn, dt.date(2026, 10, 31), LedgerFilter(), "EUR")["ar_total"]  # doctest: +SKIP
    """
    as_of = as_date(as_of)
    buckets = kar.make_buckets(buckets) if not isinstance(buckets[0], kar.Bucket) else tuple(buckets)
    codes = ledger_currencies(conn, flt)
    rates = conversion_rates(conn, as_of, codes, report)
    begin = as_of.replace(day=1) - dt.timedelta(days=1)
    tot = dict(ar=0, cur=0, o90=0, sales=0, ar0=0, mtd=0, unapplied=0, items=0, customers=0)
    aging_tot = {b.label: 0 for b in buckets}
    monthly: dict[tuple[int, int], int] = {}
    for code in codes:
        f1, r = _per_currency(flt, code), rates[code]
        tr = kar.kpi_trend(conn, [begin, as_of], f1, window).set_index("as_of")
        at, at0 = tr.loc[as_of], tr.loc[begin]
        mtd = kar.credit_sales(conn, as_of.replace(day=1), as_of, f1)
        ag = kar.aging(conn, as_of, f1, buckets)
        for k, v in (("ar", at.ar_cents), ("cur", at.current_cents), ("o90", at.over_90_cents),
                     ("sales", at.sales_cents), ("ar0", at0.ar_cents), ("mtd", mtd),
                     ("unapplied", kar.unapplied_cash(conn, as_of, f1))):
            tot[k] += r.convert(int(v))
        for row in ag.itertuples():
            aging_tot[row.bucket] += r.convert(int(row.open_cents))
        tot["items"] += int(ag["items"].sum())
        tot["customers"] += kar.customers_with_balance(conn, as_of, f1)
        for key, cents in _monthly_sales(conn, as_of, f1).items():
            monthly[key] = monthly.get(key, 0) + r.convert(cents)
    ar, cur, sales = tot["ar"], tot["cur"], tot["sales"]
    dso = None if sales == 0 else Fraction(ar * window, sales)
    bp = None if sales == 0 else Fraction(cur * window, sales)
    cb = kar.countback_dso(ar, as_of, tot["mtd"], monthly)
    cei_m = kar.cei_fraction(tot["ar0"], tot["mtd"], ar, cur)
    return {
        "as_of": as_of.isoformat(), "currency": report, "window": int(window),
        "ar_total": to_units(ar), "current_total": to_units(cur), "overdue_total": to_units(ar - cur),
        "over_90_total": to_units(tot["o90"]),
        "pct_current": kar.round_half_up(None if ar == 0 else Fraction(cur * 100, ar)),
        "credit_sales": to_units(sales),
        "dso_standard": kar.round_half_up(dso), "dso_countback": kar.round_half_up(cb),
        "bpdso": kar.round_half_up(bp), "add": kar.round_half_up(None if dso is None else dso - bp),
        "cei_month": kar.round_half_up(cei_m),
        "aging": {k: to_units(v) for k, v in aging_tot.items()},
        "open_items": tot["items"], "customers_with_balance": tot["customers"],
        "unapplied_cash": to_units(tot["unapplied"]),
        "converted": True,
        "rate_date": min((r.rate_date for r in rates.values() if r.source != r.target), default=as_of).isoformat(),
        "rates": _rates_note(rates),
    }


def convert_frame(frames: dict[str, pd.DataFrame], rates: dict[str, Rate], keys: list[str], report: str) -> pd.DataFrame:
    """Add up per-currency frames of the same shape into ``report``: every ``*_cents`` column converted
    (per currency, half-up) and summed, other number columns summed, grouped by ``keys``.

    Parameters
    ----------
    frames : dict
        currency -> frame (e.g. :func:`analytics.kpis.aging` of that currency).
    rates : dict
        currency -> :class:`Rate` into ``report``.
    keys : list of str
        Columns identifying a row (e.g. ``["bucket", "bucket_order"]``).
    report : str

    Returns
    -------
    pandas.DataFrame
        ``attrs["currency"] = report``, ``attrs["rates"]`` = {currency: text}.

    Example
    -------
    >>> convert_frame({"GBP": aging_gbp}, {"GBP": rate_gbp_eur}, ["bucket"], "EUR")  # doctest: +SKIP
    """
    parts = [_converted(frame, rates[code]) for code, frame in frames.items()]
    if not parts:
        return pd.DataFrame()
    allf = pd.concat(parts, ignore_index=True)
    out = allf.groupby(keys, as_index=False, sort=False).sum(numeric_only=True)
    out = out[[c for c in frames[next(iter(frames))].columns if c in out.columns]]
    out.attrs.update(_rate_attrs(rates, report))
    return out


def _converted(frame: pd.DataFrame, rate: Rate) -> pd.DataFrame:
    """A copy of ``frame`` with every ``*_cents`` column converted at ``rate`` (half-up; missing = 0)."""
    f = frame.copy()
    for col in [c for c in f.columns if c.endswith("_cents")]:
        f[col] = [rate.convert(int(v)) for v in f[col].fillna(0)]
    return f


def _rate_attrs(rates: dict[str, Rate], report: str) -> dict:
    """A converted frame's ``attrs``: currency, rates {currency: text}, rate_date (the oldest, ISO) or None."""
    day = min((r.rate_date for r in rates.values() if r.source != r.target), default=None)
    return {"currency": report, "rates": {c: r.text() for c, r in sorted(rates.items()) if r.source != r.target},
            "rate_date": day and day.isoformat()}


def aging(conn: sa.Connection, as_of: dt.date, flt: LedgerFilter, report: str, buckets=kar.DEFAULT_BUCKETS,
          basis: str = "due") -> pd.DataFrame:
    """The aging of every currency in ``flt``'s scope converted into ``report`` at ``as_of``'s rates.

    Per currency :func:`analytics.kpis.aging` (per instalment, ``basis``), each bucket's amount converted
    half-up and added; ``items`` add up; ``customers`` add up per currency (accounts).

    Parameters
    ----------
    conn : sqlalchemy.Connection
    as_of : datetime.date
    flt : LedgerFilter
        Its currency criterion is ignored.
    report : str
    buckets : optional
    basis : {"due", "document"}

    Returns
    -------
    pandas.DataFrame
        ``bucket, bucket_order, open_cents, items, customers``; ``attrs``: currency, rates, rate_date.

    Example
    -------
    >>> aging(conn, dt.date(2026, 10, 31), LedgerFilter(), "EUR")  # doctest: +SKIP
    """
    codes = ledger_currencies(conn, flt)
    rates = conversion_rates(conn, as_date(as_of), codes, report)
    frames = {c: kar.aging(conn, as_of, _per_currency(flt, c), buckets, basis=basis) for c in codes}
    if not frames:
        return kar.aging(conn, as_of, _per_currency(flt, report), buckets, basis=basis)
    return convert_frame(frames, rates, ["bucket", "bucket_order"], report)


def _trend_rates(conn: sa.Connection, dates: Iterable[dt.date], flt: LedgerFilter, report: str):
    """(currencies in scope, {date: rates}) for a converted trend."""
    codes = ledger_currencies(conn, flt)
    return codes, _rates_by_date(conn, sorted(set(as_date(d) for d in dates)), codes, report)


def _rates_by_date(conn: sa.Connection, dates: list[dt.date], codes: list[str], report: str) -> dict[dt.date, dict]:
    """Conversion rates at each date that has them for every currency (dates without are left out)."""
    out = {}
    for d in dates:
        try:
            out[d] = conversion_rates(conn, d, codes, report)
        except UserError:
            continue
    if dates and not out:
        conversion_rates(conn, dates[-1], codes, report)  # raises, naming the missing rate
    return out


def aging_trend(conn: sa.Connection, dates: Iterable[dt.date], flt: LedgerFilter, report: str,
                buckets=kar.DEFAULT_BUCKETS) -> pd.DataFrame:
    """:func:`analytics.kpis.aging_trend` of every currency converted into ``report``, each date at its
    own rate (each currency's bucket amount converted half-up, then added). Dates without rates are
    left out, as in :func:`kpi_trend`.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    dates : iterable of datetime.date
    flt : LedgerFilter
        Its currency criterion is ignored.
    report : str
    buckets : optional

    Returns
    -------
    pandas.DataFrame
        ``as_of, bucket, bucket_order, open_cents``; ``attrs["currency"]`` = ``report``.

    Example
    -------
    >>> aging_trend(conn, [dt.date(2026, 9, 30), dt.date(2026, 10, 31)], LedgerFilter(), "EUR")  # doctest: +SKIP
    """
    codes, stated = _trend_rates(conn, dates, flt, report)
    dates = sorted(stated)
    frames = []
    for code in codes:
        f = kar.aging_trend(conn, dates, _per_currency(flt, code), buckets)
        f["open_cents"] = [stated[as_date(d)][code].convert(int(v)) for d, v in zip(f["as_of"], f["open_cents"])]
        frames.append(f)
    if not frames:
        return kar.aging_trend(conn, dates, _per_currency(flt, report), buckets)
    out = pd.concat(frames).groupby(["as_of", "bucket", "bucket_order"], as_index=False, sort=False)["open_cents"].sum()
    out = out.sort_values(["as_of", "bucket_order"], ignore_index=True)
    out.attrs["currency"] = report
    return out


def kpi_trend(conn: sa.Connection, dates: Iterable[dt.date], flt: LedgerFilter, report: str,
              window: int = kar.DEFAULT_WINDOW) -> pd.DataFrame:
    """:func:`analytics.kpis.kpi_trend` converted into ``report``, each date at its own rate.

    AR, current, overdue, over 90 and sales are converted per currency and added; DSO, BPDSO, ADD and
    % current are recomputed from those (module docstring). Countback DSO and CEI are left out (NaN) in
    the converted trend; the converted snapshot (:func:`snapshot`) has both. Dates for which a rate is
    missing (or too old) are left out; none at all raises :class:`UserError`.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    dates : iterable of datetime.date
    flt : LedgerFilter
        Its currency criterion is ignored.
    report : str
    window : int

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`analytics.kpis.kpi_trend` plus ``rate_date``; ``attrs["currency"]``.

    Example
    -------
    >>> kpi_trend(conn, [dt.date(2026, 9, 30), dt.date(2026, 10, 31)], LedgerFilter(), "EUR")  # doctest: +SKIP
    """
    codes, stated = _trend_rates(conn, dates, flt, report)
    dates = sorted(stated)
    money = ["ar_cents", "current_cents", "overdue_cents", "over_90_cents", "sales_cents"]
    acc = {d: dict.fromkeys(money, 0) for d in dates}
    for code in codes:
        tr = kar.kpi_trend(conn, dates, _per_currency(flt, code), window)
        for row in tr.itertuples():
            d = as_date(row.as_of)
            for col in money:
                acc[d][col] += stated[d][code].convert(int(getattr(row, col)))
    rows = []
    for d in dates:
        a = acc[d]
        s = a["sales_cents"]
        dso = math.nan if s == 0 else a["ar_cents"] * window / s
        bp = math.nan if s == 0 else a["current_cents"] * window / s
        rows.append({"as_of": d, **a, "dso_standard": dso, "bpdso": bp, "add": dso - bp,
                     "pct_current": math.nan if a["ar_cents"] == 0 else a["current_cents"] * 100 / a["ar_cents"],
                     "dso_countback": math.nan, "cei_month": math.nan,
                     "rate_date": min((r.rate_date for r in stated[d].values() if r.source != r.target), default=d)})
    df = pd.DataFrame(rows)
    df.attrs["currency"] = report
    return df


def collector_kpis(conn: sa.Connection, start: dt.date, end: dt.date, flt: LedgerFilter, report: str,
                   grace_days: int | None = None, severe_dpd: int = 60, recent_days: int = 7) -> pd.DataFrame:
    """:func:`analytics.kpis.collector_kpis` of every currency in ``flt``'s scope, converted into ``report``
    at ``end``'s rates.

    Per currency :func:`analytics.kpis.collectors.collector_measures`; per collector the money parts
    (AR, overdue, cash collected, CEI's opening AR and credit sales) are converted half-up and added, the
    counts (accounts, activities, promises, severe accounts) added — a customer with items in two
    currencies counts once per currency, as in :func:`snapshot` — and the ratios recomputed from the
    sums: CEI = :func:`analytics.kpis.ar.cei_fraction` of the converted parts, activities per day,
    promise kept % and severe touched %.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    start, end : datetime.date
    flt : LedgerFilter
        Its currency criterion is ignored.
    report : str
    grace_days, severe_dpd, recent_days : optional
        As :func:`analytics.kpis.collector_kpis`.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`analytics.kpis.collector_kpis`; ``attrs``: currency, rates, rate_date.

    Example
    -------
    >>> collector_kpis(conn, dt.date(2026, 10, 1), dt.date(2026, 10, 31), LedgerFilter(), "EUR")  # doctest: +SKIP
    """
    from analytics.kpis import collectors as kcol
    from analytics.kpis.common import check_period
    from analytics.ledger import DEFAULT_GRACE_DAYS

    start, end = as_date(start), as_date(end)
    check_period(start, end)
    codes = ledger_currencies(conn, flt)
    rates = conversion_rates(conn, end, codes, report)
    money = ("ar_cents", "overdue_cents", "collected_cents", "cei_begin_cents", "cei_sales_cents")
    total: dict[tuple, dict] = {}
    for code in codes:
        got = kcol.collector_measures(conn, [(start, end)], _per_currency(flt, code),
                                      DEFAULT_GRACE_DAYS if grace_days is None else grace_days,
                                      severe_dpd, recent_days)
        for key, m in got.items():
            acc = total.setdefault(key, {})
            for name, value in m.items():
                if name == "cei":
                    continue
                if name == "seen":
                    acc[name] = acc.get(name, False) or bool(value)
                    continue
                v = rates[code].convert(int(value)) if name in money else int(value)
                acc[name] = acc.get(name, 0) + v
    for (_, k), acc in total.items():
        value = None
        if k:
            ar_c, od_c = acc.get("ar_cents", 0), acc.get("overdue_cents", 0)
            value = kar.cei_fraction(acc.get("cei_begin_cents", 0), acc.get("cei_sales_cents", 0), ar_c, ar_c - od_c)
        acc["cei"] = math.nan if value is None else float(value)
    df = kcol.collector_frame(conn, total, start, end, report)
    df.attrs.update(_rate_attrs(rates, report))
    return df


def sla_status(conn: sa.Connection, as_of: dt.date, flt: LedgerFilter, report: str, targets=None) -> pd.DataFrame:
    """:func:`analytics.kpis.sla.sla_status` of every currency in ``flt``'s scope, in ``report`` at
    ``as_of``'s rates.

    Per currency :func:`analytics.kpis.sla.sla_parts`; the money parts (DSO's AR and sales, CEI's four
    parts) are converted half-up and added, the counts (disputes, accounts past due and contacted,
    promises) added, and the five metrics recomputed from the sums (:func:`analytics.kpis.sla.sla_frame`):
    DSO = Σ AR_R / Σ S_R × N, CEI from the converted parts; the shares from the added counts (an account
    past due in two currencies counts once per currency).

    Parameters
    ----------
    conn : sqlalchemy.Connection
    as_of : datetime.date
    flt : LedgerFilter
        Its currency criterion is ignored.
    report : str
    targets : analytics.kpis.sla.SlaTargets, optional

    Returns
    -------
    pandas.DataFrame
        As :func:`analytics.kpis.sla.sla_status`; ``attrs`` also rates and rate_date.

    Example
    -------
    >>> sla_status(conn, dt.date(2026, 10, 31), LedgerFilter(), "EUR")  # doctest: +SKIP
    """
    from analytics.kpis import sla

    as_of = as_date(as_of)
    targets = targets or sla.DEFAULT_TARGETS
    codes = ledger_currencies(conn, flt)
    rates = conversion_rates(conn, as_of, codes, report)
    total: dict[str, int] = {}
    for code in codes:
        for name, value in sla.sla_parts(conn, as_of, _per_currency(flt, code), targets).items():
            v = rates[code].convert(int(value)) if name.endswith("_cents") else int(value)
            total[name] = total.get(name, 0) + v
    if not codes:
        total = sla.sla_parts(conn, as_of, _per_currency(flt, report), targets)
    df = sla.sla_frame(total, as_of, report, targets)
    df.attrs.update(_rate_attrs(rates, report))
    return df


def worklist(conn: sa.Connection, as_of: dt.date, flt: LedgerFilter, report: str, model=None) -> pd.DataFrame:
    """The collector worklist of every currency in ``flt``'s scope in one ranking, money in ``report``.

    Per currency :func:`analytics.worklist.worklist` (the items of that currency); its money columns
    (contact value, expected loss, open, overdue, promised today, disputed) converted half-up at
    ``as_of``'s rate, then all accounts ranked together (:func:`analytics.worklist.rank`), so a
    large EUR balance and a large USD balance compare in one unit. An account with items in two
    currencies is two rows (as accounts count in :func:`snapshot`). The ``reasons`` sentences keep the
    account's own currency.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    as_of : datetime.date
    flt : LedgerFilter
        Its currency criterion is ignored.
    report : str
    model : optional
        As :func:`analytics.worklist.worklist`.

    Returns
    -------
    pandas.DataFrame
        :data:`analytics.worklist.COLUMNS`, ``currency`` = ``report``; ``attrs``: currency, rates, rate_date.

    Example
    -------
    >>> worklist(conn, dt.date(2026, 10, 31), LedgerFilter(), "EUR").head(3)  # doctest: +SKIP
    """
    from analytics import worklist as wl

    as_of = as_date(as_of)
    codes = ledger_currencies(conn, flt)
    rates = conversion_rates(conn, as_of, codes, report)
    parts = []
    for code in codes:
        f = wl.worklist(conn, as_of, _per_currency(flt, code), model)
        if not f.empty:
            parts.append(_converted(f, rates[code]).assign(currency=report))
    out = wl.rank(pd.concat(parts, ignore_index=True))[wl.COLUMNS] if parts else wl.worklist(
        conn, as_of, _per_currency(flt, report), model)
    out.attrs.update(_rate_attrs(rates, report))
    return out


# ------------------------------------------------------------------------------------------------
# Demo rates and the command line
# ------------------------------------------------------------------------------------------------
#: Rough EUR rates the synthetic demo rates wander around (not market data).
DEMO_CENTRES = {"USD": Decimal("1.08"), "GBP": Decimal("0.86"), "JPY": Decimal("160.0"), "CHF": Decimal("0.95")}


def demo_rates_csv(start: dt.date, end: dt.date, seed: int = 42) -> str:
    """SYNTHETIC daily rates in the ECB's CSV layout (weekdays, newest first) for demos and tests.

    A seeded random walk around :data:`DEMO_CENTRES`; clearly not market data.

    Parameters
    ----------
    start, end : datetime.date
    seed : int

    Returns
    -------
    str
        The CSV text.

    Example
    -------
    >>> demo_rates_csv(dt.date(2026, 10, 30), dt.date(2026, 10, 30)).splitlines()[0]
    'Date,USD,GBP,JPY,CHF,'
    """
    rng = random.Random(seed)
    level = dict(DEMO_CENTRES)
    lines = []
    d = start
    while d <= end:
        if d.weekday() < 5:
            cells = []
            for code, centre in DEMO_CENTRES.items():
                step = Decimal(str(round(rng.gauss(0, 0.003), 6)))
                level[code] = level[code] * (1 + step) * Decimal("0.98") + centre * Decimal("0.02")
                places = Decimal("0.01") if centre > 50 else Decimal("0.0001")
                cells.append(str(level[code].quantize(places)))
            lines.append(f"{d.isoformat()},{','.join(cells)},")
        d += dt.timedelta(days=1)
    return "\n".join([f"Date,{','.join(DEMO_CENTRES)},", *reversed(lines)]) + "\n"


def configure_cli(parser: argparse.ArgumentParser) -> None:
    """``python -m analytics fx rate|demo-rates``: look up a rate; write synthetic demo rates."""
    from analytics import cli_support as cs

    sub = parser.add_subparsers(dest="fx_command", metavar="ACTION", required=True)
    p = sub.add_parser("rate", help="the rate from one currency to another on a date (latest on or before it)")
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("--on", type=cs.date_arg, default=None, help="date (default: today)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--db", default=argparse.SUPPRESS, help="SQLAlchemy URL (as before the action)")
    p.set_defaults(run=_run_rate)
    p = sub.add_parser("demo-rates", help="write SYNTHETIC daily rates in the ECB CSV layout (demos, tests)")
    p.add_argument("--from", dest="start", type=cs.date_arg, required=True)
    p.add_argument("--to", dest="end", type=cs.date_arg, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(run=_run_demo_rates)


def _run_rate(args: argparse.Namespace) -> int:
    engine = db.connect(args.db or db.default_url())
    try:
        with engine.connect() as conn:
            r = rate(conn, args.source.upper(), args.target.upper(), args.on or dt.date.today())
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps({"source": r.source, "target": r.target, "rate": float(r.value),
                          "rate_date": r.rate_date.isoformat()}))
    else:
        print(r.text())
    return 0


def _run_demo_rates(args: argparse.Namespace) -> int:
    if args.end < args.start:
        raise UserError(f"--to {args.end} is before --from {args.start}")
    with open(args.out, "w", encoding="utf-8") as out:
        out.write(demo_rates_csv(args.start, args.end))
    print(f"wrote synthetic rates {args.start} to {args.end} to {args.out} (not market data)")
    return 0
