"""Cell parsers shared by the loaders, and :class:`Checker`, which records a :class:`RowError` per bad cell.

Parsers raise ``ValueError`` with a reason a user can act on; :class:`Checker` turns that into a
row error naming the spreadsheet row, the source column and the value.
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Callable, Sequence

from analytics.errors import RowError

CENT = Decimal("0.01")
# Largest amount one row may carry: 10,000,000,000.00 (ten billion) currency units = 10**12 cents. Money is
# summed as 64-bit integers (SQLite's SUM overflows past 2**63 - 1 = 9.22e18 cents), so any 9.2 million rows
# all at this maximum still add up exactly on every backend; a ledger of 10,000 rows at the maximum sums to
# 1e16 cents. Even yen invoices stay far below it; larger values are typing errors, refused as row errors.
MAX_ABS_CENTS = 10**12
MAX_TERMS_DAYS = 3650  # payment terms longer than ten years are a typing error (and overflow date arithmetic)


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


# Unicode categories that must not appear inside an id: format characters (zero-width space/joiners,
# bidi marks, soft hyphen), controls, private use, unassigned, and line/paragraph separators. Together with
# NFC they make two ids that look the same on screen the same string, or a row error.
_INVISIBLE = {"Cf", "Cc", "Co", "Cn", "Cs", "Zl", "Zp"}


def check_visible(s: str) -> str:
    """``s`` in Unicode NFC, refused (``ValueError``) when it holds an invisible or look-alike character.

    Ids are compared as strings, so ``"C-001"`` and ``"C-0\u200b01"`` (a zero-width space) or
    ``"C\u00a0001"`` (a no-break space) would be two customers that look like one. Such ids are refused
    naming the character; composed and decomposed accents (``é`` vs ``e`` + U+0301) are made the same by NFC.

    Parameters
    ----------
    s : str

    Returns
    -------
    str
        The NFC form of ``s``.

    Example
    -------
    >>> check_visible("CUST-1")
    'CUST-1'
    """
    s = unicodedata.normalize("NFC", s)
    for pos, ch in enumerate(s, start=1):
        cat = unicodedata.category(ch)
        if cat in _INVISIBLE or (cat == "Zs" and ch != " "):
            name = unicodedata.name(ch, "unnamed character")
            raise ValueError(f"contains an invisible character U+{ord(ch):04X} ({name.lower()}) at position {pos}: "
                             "ids must be visible text so that two ids never look alike")
    return s


def normalise_id(value: Any) -> str | None:
    """A document/customer number as text: ``1930438491.0`` -> ``1930438491``; ``1.930438491E9`` too.

    Leading zeros are kept (``0000611365`` stays as it is); use :func:`strip_zeros` where the source
    writes the same number with and without them. The id is put in Unicode NFC; an id holding an
    invisible character (zero-width space, bidi mark, no-break space...) is refused (:func:`check_visible`).

    Example
    -------
    >>> normalise_id("1930438491.0")
    '1930438491'
    """
    s = text(value)
    if s is None:
        return None
    s = check_visible(s)
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
# Which row currencies a symbol may stand for. "$" is written for many dollars and pesos.
SYMBOL_CURRENCIES = {
    "€": {"EUR"}, "£": {"GBP"}, "¥": {"JPY", "CNY"},
    "$": {"USD", "CAD", "AUD", "NZD", "SGD", "HKD", "MXN", "ARS", "CLP", "COP", "TWD", "BRL"},
}


def _check_marks(marks: list[str], currency: str | None) -> None:
    """Refuse an amount whose currency code or symbol contradicts the row's currency."""
    if not currency:
        return
    for mark in marks:
        allowed = SYMBOL_CURRENCIES.get(mark, {mark})
        if currency not in allowed:
            raise ValueError(f"the amount is written in {mark} but the row's currency is {currency}")


def parse_amount(value: Any, decimal: str = ".", thousands: str | None = ",", currency: str | None = None) -> int:
    """Integer cents from a cell, rounded half up to the cent.

    Text may carry a sign in front (``-1,234.50``), behind (SAP: ``1.234,50-``) or parentheses
    (``(1,234.50)``), currency symbols and spaces. ``thousands`` groups must be of three digits, so
    ``1,23`` with thousands ``,`` is refused rather than read as 123.

    A currency code or symbol written in the amount must agree with ``currency`` (the row's currency,
    when known): ``EUR 100.00`` in a USD row is refused, ``USD 100.00`` or ``$100.00`` in a USD row is
    accepted (see :data:`SYMBOL_CURRENCIES`). Amounts beyond :data:`MAX_ABS_CENTS` (and 40-digit or
    ``1e308`` values) are refused with ``ValueError``, never a ``decimal`` exception.

    Parameters
    ----------
    value : str, int, float or Decimal
    decimal, thousands : str
        The separators the file uses (``thousands`` None: no grouping).
    currency : str, optional
        The row's ISO currency code.

    Returns
    -------
    int
        Cents.

    Example
    -------
    >>> parse_amount("1.234,50-", decimal=",", thousands=".")
    -123450
    """
    marks: list[str] = []
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
        marks += _CURRENCY_MARKS.findall(s)
        s = _CURRENCY_MARKS.sub("", s).strip(_SPACES)
        if s.endswith("-"):
            negative, s = not negative, s[:-1]
        elif s.startswith("-"):
            negative, s = not negative, s[1:]
        elif s.startswith("+"):
            s = s[1:]
        marks += _CURRENCY_MARKS.findall(s)
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
    too_large = f"amount too large (more than {MAX_ABS_CENTS // 100:,} in absolute value)"
    if abs(d) > MAX_ABS_CENTS // 100 + 1:  # before any arithmetic: 1e308 or 40 digits exceed Decimal's precision
        raise ValueError(too_large)
    cents = int((d / CENT).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if abs(cents) > MAX_ABS_CENTS:
        raise ValueError(too_large)
    _check_marks(marks, currency)
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

    def amount(self, row, rec, column, *, decimal=".", thousands=",", required=True, what="amount", currency=None):
        return self.parse(row, rec, column, lambda v: parse_amount(v, decimal, thousands, currency),
                          required=required, what=what)
