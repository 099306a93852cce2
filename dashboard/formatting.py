"""How values look on screen: money with separators and currency, percentages, days, deltas; typed amounts to cents.
"""
from __future__ import annotations

import pandas as pd


DASH = "—"


def money(units, currency: str | None = None, decimals: int = 0) -> str:
    """Money in currency units with thousands separators: ``money(1234567.5, "USD") == "USD 1,234,568"``."""
    if is_missing(units):
        return DASH
    text = f"{float(units):,.{decimals}f}"
    if text.startswith("-"):
        text = "−" + text[1:]
    return f"{currency} {text}" if currency else text


def cents(value, currency: str | None = None, decimals: int = 0) -> str:
    """Money given in integer cents: ``cents(123456789, "EUR") == "EUR 1,234,568"``."""
    if is_missing(value):
        return DASH
    return money(int(value) / 100, currency, decimals)


def num(value, decimals: int = 1) -> str:
    """A number with thousands separators, or a dash when missing."""
    if is_missing(value):
        return DASH
    return f"{float(value):,.{decimals}f}"


def days(value, decimals: int = 1) -> str:
    if is_missing(value):
        return DASH
    return f"{float(value):,.{decimals}f} days"


def pct(value, decimals: int = 1, ratio: bool = False) -> str:
    """A percentage: ``pct(82.13) == "82.1%"``; ``pct(0.8213, ratio=True) == "82.1%"``."""
    if is_missing(value):
        return DASH
    v = float(value) * (100 if ratio else 1)
    return f"{v:,.{decimals}f}%"


def delta(current, previous, *, kind: str = "number") -> str | None:
    """Change from ``previous`` to ``current`` as text for ``st.metric(delta=...)``; None when undefined.

    ``kind``: ``money`` (units), ``pct`` (percentage points), ``days`` or ``number``.
    """
    if is_missing(current) or is_missing(previous):
        return None
    diff = float(current) - float(previous)
    if kind == "money":
        return ("+" if diff >= 0 else "-") + f"{abs(diff):,.0f}"
    if kind == "pct":
        return f"{diff:+.1f} pp"
    if kind == "days":
        return f"{diff:+.1f} days"
    return f"{diff:+,.2f}"



def is_missing(value) -> bool:
    """True for None, NaN, NaT and pandas.NA."""
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False



def to_cents(units) -> int:
    """Currency units typed by a person -> integer cents, rounded half up (``12.345 -> 1235``)."""
    from decimal import ROUND_HALF_UP, Decimal

    return int((Decimal(str(units)) * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


