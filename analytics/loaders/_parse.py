"""Cell parsers shared by the loaders, and :class:`Checker`, which records a :class:`RowError` per bad cell.

Parsers raise ``ValueError`` with a reason a user can act on; :class:`Checker` turns that into a
row error naming the spreadsheet row, the source column and the value.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Callable, Sequence

from analytics.errors import RowError

CENT = Decimal("0.01")
# Largest amount accepted: 10 trillion currency units. Keeps every amount (and sums of many) inside the
# databases' 64-bit integers; larger values are typing errors, refused as row errors.
MAX_ABS_CENTS = 10**15


def is_blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:  # NaN
        return True
    return isinstance(value, str) and not value.strip()


def text(value: Any) -> str | None:
    """Stripped text of a cell, None when blank. Integral floats from Excel lose their ``.0``."""
    if is_blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


_FLOAT_ID = re.compile(r"^(\d+)\.0*$")
_SCI_ID = re.compile(r"^\d+(\.\d+)?[eE]\+?\d+$")


def normalise_id(value: Any) -> str | None:
    """A document/customer number as text: ``1930438491.0`` -> ``1930438491``; ``1.930438491E9`` too.

    Leading zeros are kept (``0000611365`` stays as it is); use :func:`strip_zeros` where the source
    writes the same number with and without them.
    """
    s = text(value)
    if s is None:
        return None
    m = _FLOAT_ID.match(s)
    if m:
        return m.group(1)
    if _SCI_ID.match(s):
        d = Decimal(s)
        if d == d.to_integral_value():
            return str(int(d))
    return s


def strip_zeros(value: str) -> str:
    """``0200769623`` -> ``200769623`` for all-digit ids; other ids unchanged."""
    return (value.lstrip("0") or "0") if value.isdigit() else value


@lru_cache(maxsize=65536)
def _strptime(s: str, formats: tuple[str, ...]) -> dt.date:
    for fmt in formats:
        try:
            return dt.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"not a date in the expected format ({' or '.join(formats)})")


def parse_date(value: Any, formats: Sequence[str]) -> dt.date:
    """A date from a cell: Excel date/datetime values as they are; text with one of ``formats``.

    Example
    -------
    >>> parse_date("1/2/2013", ["%m/%d/%Y"])
    datetime.date(2013, 1, 2)
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError("a number where a date was expected")
    return _strptime(str(value).strip(), tuple(formats))


_HR_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_HR_INT = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:\.0*)?$")


@lru_cache(maxsize=65536)
def _hr_date(s: str) -> dt.date:
    m = _HR_ISO.match(s) or _HR_INT.match(s)
    if not m:
        raise ValueError("not a date (expected YYYY-MM-DD, YYYY-MM-DD 00:00:00, YYYYMMDD or YYYYMMDD.0)")
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError as exc:
        raise ValueError(f"impossible date: {exc}") from None


def parse_mixed_date(value: Any) -> dt.date:
    """HighRadius dates: ``2020-01-26``, ``2020-01-26 00:00:00``, ``20200126`` or ``20200126.0``."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _hr_date(str(value).strip())


def _amount_pattern(decimal: str, thousands: str | None) -> re.Pattern:
    d = re.escape(decimal)
    if thousands:
        t = re.escape(thousands)
        return re.compile(rf"^(?:\d{{1,3}}(?:{t}\d{{3}})+|\d+)(?:{d}\d*)?$|^{d}\d+$")
    return re.compile(rf"^\d+(?:{d}\d*)?$|^{d}\d+$")


@lru_cache(maxsize=64)
def _pattern(decimal: str, thousands: str | None) -> re.Pattern:
    return _amount_pattern(decimal, thousands)


# Currency symbols and ISO codes; whitespace is only trimmed at the ends, so a space inside the digits
# must be the declared thousands separator (with three-digit groups) or the amount is refused.
_CURRENCY_MARKS = re.compile(r"[$€£¥]|^[A-Z]{3}(?=[\s\d(+-])|(?<=[\s\d)-])[A-Z]{3}$")
_SPACES = " \t\u00a0\u202f"


def parse_amount(value: Any, decimal: str = ".", thousands: str | None = ",") -> int:
    """Integer cents from a cell, rounded half up to the cent.

    Text may carry a sign in front (``-1,234.50``), behind (SAP: ``1.234,50-``) or parentheses
    (``(1,234.50)``), currency symbols and spaces. ``thousands`` groups must be of three digits, so
    ``1,23`` with thousands ``,`` is refused rather than read as 123.

    Example
    -------
    >>> parse_amount("1.234,50-", decimal=",", thousands=".")
    -123450
    """
    if isinstance(value, bool):
        raise ValueError("not a number")
    if isinstance(value, (int, float, Decimal)):
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            raise ValueError("not a number")
        d = Decimal(str(value))
    else:
        s = str(value).strip(_SPACES)
        negative = False
        if s.startswith("(") and s.endswith(")"):
            negative, s = True, s[1:-1]
        s = _CURRENCY_MARKS.sub("", s).strip(_SPACES)
        if s.endswith("-"):
            negative, s = not negative, s[:-1]
        elif s.startswith("-"):
            negative, s = not negative, s[1:]
        elif s.startswith("+"):
            s = s[1:]
        s = _CURRENCY_MARKS.sub("", s).strip(_SPACES)
        if not s or not _pattern(decimal, thousands or None).match(s):
            hint = f" (decimal separator {decimal!r}" + (f", thousands {thousands!r})" if thousands else ")")
            raise ValueError("not a number" + (hint if s else ""))
        if thousands:
            s = s.replace(thousands, "")
        s = s.replace(decimal, ".")
        try:
            d = Decimal(s)
        except InvalidOperation:
            raise ValueError("not a number") from None
        if negative:
            d = -d
    if not d.is_finite():
        raise ValueError("not a number")
    cents = int((d / CENT).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if abs(cents) > MAX_ABS_CENTS:
        raise ValueError(f"amount too large (more than {MAX_ABS_CENTS // 100:,} in absolute value)")
    return cents


class Checker:
    """Parses cells of one file and collects a :class:`RowError` for each one that fails.

    Every method returns the parsed value, or None after recording an error (or when the cell is
    blank and not required).
    """

    def __init__(self):
        self.errors: list[RowError] = []

    def error(self, row: int, column: str, value: Any, reason: str) -> None:
        shown = "" if value is None else str(value)
        self.errors.append(RowError(row, column, shown[:200], reason))

    def parse(self, row: int, rec: dict, column: str | None, parser: Callable[[Any], Any], *,
              required: bool = False, what: str = "value") -> Any:
        if column is None:
            return None
        value = rec.get(column)
        if is_blank(value):
            if required:
                self.error(row, column, value, f"missing {what}")
            return None
        try:
            return parser(value)
        except ValueError as exc:
            self.error(row, column, value, str(exc))
            return None

    def text(self, row, rec, column, *, required=False, what="value"):
        return self.parse(row, rec, column, text, required=required, what=what)

    def ident(self, row, rec, column, *, required=False, what="id"):
        return self.parse(row, rec, column, normalise_id, required=required, what=what)

    def date(self, row, rec, column, formats, *, required=False, what="date"):
        return self.parse(row, rec, column, lambda v: parse_date(v, formats), required=required, what=what)

    def amount(self, row, rec, column, *, decimal=".", thousands=",", required=True, what="amount"):
        return self.parse(row, rec, column, lambda v: parse_amount(v, decimal, thousands),
                          required=required, what=what)
