"""How values look on screen: money with separators and currency, percentages, days, deltas; typed amounts to cents;
ledger and user text made safe for Markdown (:func:`plain`).
"""
from __future__ import annotations

import re

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


# Characters that start Markdown (or Streamlit's Markdown extensions) anywhere in a line: links and images
# ``[..](..)``, HTML and autolinks ``<..>``, emphasis, strike-through, code, LaTeX ``$``, directives and
# colours ``:red[..]``, tables ``|``. They get a backslash (a CommonMark escape).
_MD_ANYWHERE = re.compile(r"([\\\[\]<>*_~`$|])")
# Bare URLs, e-mail addresses and emoji/icon shortcodes (``:smile:``, ``:material/home:``) are found in the
# text AFTER escapes are resolved (GFM autolink literals, Streamlit's emoji and icon plugins), so a
# backslash cannot stop them; an invisible WORD JOINER (U+2060) does: after every ``:`` (``http:⁠//``,
# ``:⁠smile:``), before ``@`` and between ``www`` and its dot. The text looks the same.
WJ = "\u2060"
_MD_WWW = re.compile(r"(?i)(www)\.")
_MD_ENTITY = re.compile(r"&(?=#?\w+;)")  # &lt; &#91; ... would be decoded
_MD_LINE_START = re.compile(r"^(\s*)([#>+-]|\d+(?=[.)]))")  # heading, quote, list item at the start


def plain(text) -> str:
    r"""``text`` escaped so that Markdown shows it exactly as written: no link, image, HTML, emphasis,
    heading, list, colour or LaTeX.

    Use it on every ledger or user string (customer names, ids, notes, file names, messages that
    quote a cell) passed to anything Streamlit renders as Markdown: ``st.title/header/subheader/
    caption/markdown/info/success/warning/error``, metric and expander labels, tabs, ``help=`` and
    ``st.page_link`` labels. Plain widget option lists (``st.selectbox`` ``format_func``) do not need it.
    Line breaks become spaces (a name is one line). None and NaN give ``""``. Ordinary names keep
    their look: only the characters above get a backslash or an invisible word joiner (U+2060) that
    stops bare-URL, e-mail and emoji detection (``Müller & Söhne GmbH`` is unchanged).

    Parameters
    ----------
    text : str or any
        Converted with ``str()``.

    Returns
    -------
    str
        Markdown source that renders as ``text``.

    Example
    -------
    >>> plain("![b](http://host/b.png) [Click](http://x)")
    '!\\[b\\](http\\:\u2060//host/b.png) \\[Click\\](http\\:\u2060//x)'
    """
    if is_missing(text):
        return ""
    s = " ".join(str(text).splitlines())
    s = _MD_ANYWHERE.sub(r"\\\1", s)
    s = s.replace(":", "\\:" + WJ).replace("@", WJ + "\\@")
    s = _MD_WWW.sub(r"\1" + WJ + ".", s)
    s = _MD_ENTITY.sub(r"\\&", s)
    return _MD_LINE_START.sub(_escape_line_start, s, count=1)


def _escape_line_start(m: re.Match) -> str:
    lead, mark = m.group(1), m.group(2)
    return lead + (mark + "\\" if mark.isdigit() else "\\" + mark)  # "1\. x" / "\# x"
