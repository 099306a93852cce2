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
    """Change from ``previous`` to ``current`` as text for ``st.metric(delta=...)``; None when undefined
    or zero at the shown precision.

    ``kind``: ``money`` (units), ``pct`` (percentage points), ``days`` or ``number``.
    """
    if is_missing(current) or is_missing(previous):
        return None
    diff = float(current) - float(previous)
    if round(diff, 0 if kind == "money" else 1 if kind in ("pct", "days") else 2) == 0:
        return None  # no change at the shown precision: no coloured "↑ +0"
    if kind == "money":
        return ("+" if diff >= 0 else "-") + f"{abs(diff):,.0f}"
    if kind == "pct":
        return f"{diff:+.1f} pp"
    if kind == "days":
        return f"{diff:+.1f} days"
    return f"{diff:+,.2f}"



def money_compact(units, currency: str | None = None) -> str:
    """Money short enough for a metric card: ``money_compact(677_123.4, "USD") == "USD 677.1k"``.

    Below 10,000 the figure is shown whole (``USD 9,876``); then thousands (k), millions (M) and
    billions (bn) with one decimal. Pair it with ``help=money(...)`` so the exact figure is one hover away.

    Parameters
    ----------
    units : float or None
        Amount in currency units.
    currency : str, optional
        ISO code written before the figure.

    Returns
    -------
    str

    Example
    -------
    >>> money_compact(1_234_567, "EUR")
    'EUR 1.2M'
    """
    if is_missing(units):
        return DASH
    value = float(units)
    for size, suffix in ((1e9, "bn"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= max(size, 10_000):
            text = f"{abs(value) / size:,.1f}{suffix}"
            break
    else:
        text = f"{abs(value):,.0f}"
    text = ("−" if value < 0 and text.strip("0.,k") else "") + text
    return f"{currency} {text}" if currency else text


def cents_compact(value, currency: str | None = None) -> str:
    """:func:`money_compact` of an amount in integer cents.

    Example
    -------
    >>> cents_compact(67_712_345, "USD")
    'USD 677.1k'
    """
    if is_missing(value):
        return DASH
    return money_compact(int(value) / 100, currency)


def date_text(value, fmt: str = "%Y-%m-%d") -> str:
    """A date without its time (``2026-06-03``), or a dash when missing. Datetimes with a time of day
    keep hours and minutes (``2026-06-03 14:05``).

    Parameters
    ----------
    value : date, datetime, pandas.Timestamp, ISO string or None
    fmt : str
        strftime format for the date part.

    Returns
    -------
    str

    Example
    -------
    >>> date_text(pd.Timestamp("2026-06-03 00:00:00")), date_text(None)
    ('2026-06-03', '—')
    """
    if is_missing(value):
        return DASH
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(None)
    if (ts.hour, ts.minute, ts.second, ts.microsecond) == (0, 0, 0, 0):
        return ts.strftime(fmt)
    return ts.strftime(fmt + " %H:%M")


#: Codes whose label is not just "capitalised, underscores as spaces".
LABELS = {
    "eft": "EFT", "ptp": "Promise to pay", "email": "E-mail", "credit_memo": "Credit memo",
    "debit_memo": "Debit memo", "write_off": "Write-off", "not_received": "Not received",
    "duplicate_billing": "Duplicate billing", "auto_applied": "Auto-applied", "on_time": "On time",
    "chronic_late": "Chronic late", "1-30": "1–30", "31-60": "31–60", "61-90": "61–90", "91-120": "91–120",
}


def label(code) -> str:
    """A ledger code as people read it: ``not_received -> "Not received"``, ``invoice -> "Invoice"``,
    ``eft -> "EFT"``; missing -> ``""``.

    Parameters
    ----------
    code : str or None

    Returns
    -------
    str

    Example
    -------
    >>> label("credit_memo"), label("collection agency"), label(None)
    ('Credit memo', 'Collection agency', '')
    """
    if is_missing(code):
        return ""
    text = str(code)
    if text in LABELS:
        return LABELS[text]
    text = text.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


#: Column names whose header is not just their words.
HEADERS = {"reason_code": "Reason", "doc_type": "Type", "age_days": "Age (days)", "amount_cents": "Amount",
           "worst_days_past_due": "Worst days past due"}
_ACRONYMS = {"id": "ID", "cei": "CEI", "dso": "DSO", "wape": "WAPE", "ptp": "PTP", "ar": "AR", "add": "ADD",
             "bpdso": "BPDSO", "pct": "%", "sha256": "SHA-256", "url": "URL", "fx": "FX"}


def header(name) -> str:
    """A column name as a table header: ``wape_1_4 -> "WAPE weeks 1–4"``, ``customer_id -> "Customer ID"``,
    ``ptp_kept_pct -> "PTP kept %"``.

    Parameters
    ----------
    name : str

    Returns
    -------
    str

    Example
    -------
    >>> header("wape_5_13"), header("days_past_due")
    ('WAPE weeks 5–13', 'Days past due')
    """
    text = str(name)
    if text in HEADERS:
        return HEADERS[text]
    m = re.fullmatch(r"(.*?)_(\d+)_(\d+)", text)
    if m:  # a week range: wape_1_4
        return f"{header(m.group(1))} weeks {m.group(2)}–{m.group(3)}"
    words = [w for w in text.replace("-", " ").split("_") if w] if "_" in text else text.split(" ")
    out = [_ACRONYMS.get(w.lower(), w) for w in words]
    joined = " ".join(out).strip()
    return joined[:1].upper() + joined[1:]


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
