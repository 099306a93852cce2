"""Tables and downloads: money columns in currency units, readable headers, safe CSV and Excel files.
"""
from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

import pandas as pd
import streamlit as st

from analytics.exports import neutralise_formulas, safe_csv  # noqa: F401  (re-exported as ui.neutralise_formulas)
from dashboard.feedback import empty_state
from dashboard.formatting import DASH, cents, cents_compact, date_text, header, is_missing, label, money, money_compact

PAGE_HEIGHT = 560

# Streamlit's own "Download as CSV" in every st.dataframe / st.data_editor toolbar writes cells as they are
# (a customer named "=cmd|' /C calc'!A0" becomes a live formula). It is switched off for the whole app;
# every table gets the product's own CSV/Excel buttons instead (:func:`download_buttons`, neutralised).
# .streamlit/config.toml sets the same option for `streamlit run` from the repository root; setting it here
# also covers any other launch (it reaches the browser from the session's next script run on).
st.set_option("client.disableDataExport", True)


#: Columns holding ledger codes: shown as labels (``not_received`` -> "Not received").
CODE_COLUMNS = frozenset({"doc_type", "type", "reason_code", "outcome", "status", "method", "band", "step",
                          "next_step", "segment", "action", "channel", "role", "kind", "source"})
#: Columns that identify a row: pinned to the left so they stay in view when the table scrolls sideways.
KEY_COLUMNS = ("rank", "customer_name", "invoice_id", "collector_name", "receipt_id", "dispute_id", "proposal_id",
               "when", "week_start", "bucket")
MAX_PINNED = 2
#: Integer columns that are identifiers or counts shown without a thousands separator.
_PLAIN_INT = re.compile(r"(^|_)(id|rank|origins|level|year)$")


def _is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _number_format(name: str, series: pd.Series) -> str:
    """The printf format Streamlit draws a numeric column with (see :func:`money_columns`)."""
    if name.endswith("_cents"):
        return "%,.2f"
    if name.endswith("_pct"):
        return "%.1f"
    if pd.api.types.is_integer_dtype(series) or (series.dropna() % 1 == 0).all():
        return "%d" if _PLAIN_INT.search(name) else "%,d"
    return "%,.2f"


def _format_number(value, fmt: str) -> str:
    """``value`` written as the grid would draw it with printf-style ``fmt`` (or ``percent``)."""
    if is_missing(value):
        return DASH
    v = float(value)
    if fmt == "percent":
        return f"{v * 100:,.1f}%"
    m = re.search(r"%(,?)\.?(\d*)([dfi])", fmt or "")
    if not m:
        return f"{v:,.2f}"
    decimals = 0 if m.group(3) in "di" else int(m.group(2) or 2)
    body = f"{v:,.{decimals}f}" if m.group(1) else f"{v:.{decimals}f}"
    return fmt[:m.start()].replace("%%", "%") + body + fmt[m.end():].replace("%%", "%")


def _is_dates(series: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    if series.dtype != object:
        return False
    sample = series.dropna().head(20)
    return bool(len(sample)) and all(isinstance(v, (dt.date, pd.Timestamp)) for v in sample)


def display_frame(frame: pd.DataFrame, formats: dict[str, str] | None = None) -> pd.DataFrame:
    """A copy for people: no ``nan``, ``None``, ``NaT`` or ``00:00:00`` anywhere.

    * ``*_cents`` columns become currency units named without the suffix;
    * dates lose their time of day (``2026-06-03``); a missing date is "—";
    * code columns (:data:`CODE_COLUMNS`) show labels (``not_received`` -> "Not received");
    * missing text is an empty cell; a numeric column with missing values is written out as text in its
      format (``formats`` by original column name, else :func:`_number_format`), "—" where missing, because
      the grid would draw "None" there.

    Parameters
    ----------
    frame : pandas.DataFrame
        An analytics frame (money in integer cents).
    formats : dict, optional
        printf-style format (or ``"percent"``) per column for numeric columns with gaps.

    Returns
    -------
    pandas.DataFrame

    Example
    -------
    >>> display_frame(pd.DataFrame({"open_cents": [123456, None], "doc_type": ["credit_memo", None]}))
       open     doc_type
    0  1,234.56  Credit memo
    1         —
    """
    formats = formats or {}
    out = frame.copy()
    out.attrs = {}  # analytics frames carry currency/period attrs; Arrow can't serialise dates there
    rename = {}
    for col in frame.columns:
        name = str(col)
        series = frame[col]
        if name.endswith("_cents"):
            series = pd.to_numeric(series, errors="coerce") / 100
            rename[col] = name[: -len("_cents")]
        if _is_dates(series):
            out[col] = series.map(date_text).astype(object)
        elif _is_number(series):
            if series.isna().any():
                fmt = formats.get(name) or _number_format(name, frame[col])
                out[col] = series.map(lambda v, f=fmt: _format_number(v, f)).astype(object)
            else:
                out[col] = series
        elif series.dtype == object or isinstance(series.dtype, pd.StringDtype):
            if name in CODE_COLUMNS:
                out[col] = series.map(label).astype(object)
            else:
                out[col] = series.map(lambda v: "" if is_missing(v) else v).astype(object)
        elif series.isna().any():
            out[col] = series.astype(object).map(lambda v: "" if is_missing(v) else v)
    return out.rename(columns=rename)


def export_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy for CSV/Excel downloads: ``*_cents`` columns in currency units named without the suffix;
    values otherwise as the ledger has them (numbers stay numbers, codes stay codes).

    Example
    -------
    >>> export_frame(pd.DataFrame({"open_cents": [123456]}))["open"].iloc[0]
    1234.56
    """
    out = frame.copy()
    out.attrs = {}
    rename = {}
    for col in frame.columns:
        if str(col).endswith("_cents"):
            out[col] = pd.to_numeric(frame[col], errors="coerce") / 100
            rename[col] = str(col)[: -len("_cents")]
    return out.rename(columns=rename)


def _label(name: str) -> str:
    return header(name)


def money_columns(frame: pd.DataFrame) -> dict[str, Any]:
    """Column config for a frame about to go through :func:`display_frame`: readable headers
    ("Days past due", "WAPE weeks 1–4"), every numeric column with a format (money ``1,234.56``, counts
    ``1,234``, identifiers plain), and the first key columns (:data:`KEY_COLUMNS`) pinned."""
    config: dict[str, Any] = {}
    pinned = [c for c in KEY_COLUMNS if c in {str(x) for x in frame.columns}][:MAX_PINNED]
    for col in frame.columns:
        name = str(col)
        shown = name[: -len("_cents")] if name.endswith("_cents") else name
        pin = True if name in pinned else None
        if _is_number(frame[col]) and not frame[col].isna().any():
            config[shown] = st.column_config.NumberColumn(_label(shown), format=_number_format(name, frame[col]),
                                                          pinned=pin)
        elif _is_number(frame[col]):  # written out as text by display_frame: keep it right-aligned
            config[shown] = st.column_config.TextColumn(_label(shown), pinned=pin, alignment="right")
        else:
            config[shown] = st.column_config.Column(_label(shown), pinned=pin)
    return config


def _caller_formats(frame: pd.DataFrame, column_config: dict | None) -> dict[str, str]:
    """The number format a caller's column config asks for, by original column name."""
    out = {}
    for col in frame.columns:
        name = str(col)
        shown = name[: -len("_cents")] if name.endswith("_cents") else name
        cfg = (column_config or {}).get(shown)
        fmt = ((cfg or {}).get("type_config") or {}).get("format") if isinstance(cfg, dict) else None
        if fmt:
            out[name] = fmt
    return out


def excel_bytes(frame: pd.DataFrame, sheet: str = "data") -> bytes:
    """The frame as an .xlsx workbook (XlsxWriter), with timezone-naive datetimes as Excel needs."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.tz_localize(None)
    buf = io.BytesIO()
    # Text is written as text: a cell like "=cmd|' /C calc'!A0" from an imported file must never
    # become a live formula (or link) in the downloaded workbook.
    options = {"strings_to_formulas": False, "strings_to_urls": False}
    with pd.ExcelWriter(buf, engine="xlsxwriter", engine_kwargs={"options": options}) as writer:
        out.to_excel(writer, sheet_name=(sheet or "data")[:31], index=False)
        ws = writer.sheets[(sheet or "data")[:31]]
        for idx, col in enumerate(out.columns):
            width = min(40, max(10, len(str(col)) + 2))
            ws.set_column(idx, idx, width)
    return buf.getvalue()


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as UTF-8 CSV, with formula-like text neutralised (:func:`analytics.exports.neutralise_formulas`)."""
    return safe_csv(frame).encode("utf-8")


def download_buttons(frame: pd.DataFrame, name: str, *, key: str | None = None) -> None:
    """CSV and Excel download buttons for ``frame`` (the Excel file is built only when clicked)."""
    key = key or name
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "export"
    row = st.container(horizontal=True, gap="small")
    with row:
        st.download_button("CSV", data=csv_bytes(frame), file_name=f"{safe}.csv", mime="text/csv",
                           key=f"dl_csv_{key}", icon=":material/download:", on_click="ignore")
        st.download_button(
            "Excel", data=lambda: excel_bytes(frame, safe), file_name=f"{safe}.xlsx",
            mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            key=f"dl_xlsx_{key}", icon=":material/download:", on_click="ignore")


def table(frame: pd.DataFrame | None, name: str, *, empty: str = "Nothing to show for this filter.",
          key: str | None = None, column_config: dict | None = None, height: int | str = "auto",
          downloads: bool = True, **kwargs):
    """A dataframe with money columns formatted and CSV/Excel downloads, or an empty state."""
    if frame is None or frame.empty:
        empty_state(empty)
        return None
    shown = display_frame(frame, _caller_formats(frame, column_config))
    config = money_columns(frame)
    for name, cfg in (column_config or {}).items():
        base = config.get(name)
        if isinstance(cfg, dict) and isinstance(base, dict) and base.get("type_config", {}).get("type") == "text" \
                and name in shown.columns and shown[name].dtype == object:
            # a numeric column with gaps, now text: keep the caller's label and width, not its number type
            cfg = {**base, **{k: v for k, v in cfg.items() if k in ("label", "width", "help", "pinned")}}
        config[name] = cfg
    if len(shown) > 12 and height == "auto":
        height = PAGE_HEIGHT  # about 15 rows in view, the rest a scroll (or full screen) away
    result = st.dataframe(shown, hide_index=True, column_config=config, key=key, height=height, **kwargs)
    if downloads:
        download_buttons(export_frame(frame), name, key=key or name)
    return result



def money_metric(container, title: str, *, cents_value=None, units=None, currency: str | None = None,
                 help: str | None = None, **kwargs) -> None:
    """A metric card whose amount always fits: compact units on the card (``USD 677.1k``), the exact
    figure (``USD 677,123.45``) first in its help.

    Parameters
    ----------
    container : streamlit container or column
    title : str
        Card label.
    cents_value : int, optional
        The amount in integer cents (or give ``units``).
    units : float, optional
        The amount in currency units.
    currency : str, optional
    help : str, optional
        More help, after the exact figure.
    **kwargs
        Passed to ``st.metric`` (``delta``, ``border``...).

    Returns
    -------
    None

    Example
    -------
    >>> money_metric(st, "Unapplied cash", cents_value=67_712_345, currency="USD")  # doctest: +SKIP
    """
    if cents_value is not None:
        short, exact = cents_compact(cents_value, currency), cents(cents_value, currency, 2)
    else:
        short, exact = money_compact(units, currency), money(units, currency, 2)
    text = f"Exact: {exact}." + (f"  \n{help}" if help else "")
    container.metric(title, short, help=text, **kwargs)
