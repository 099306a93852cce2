"""Tables and downloads: money columns in currency units, readable headers, safe CSV and Excel files.
"""
from __future__ import annotations

import io
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.feedback import empty_state


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy for people: ``*_cents`` columns become currency units named without the suffix."""
    out = frame.copy()
    out.attrs = {}  # analytics frames carry currency/period attrs; Arrow can't serialise dates there
    rename = {}
    for col in frame.columns:
        if str(col).endswith("_cents"):
            out[col] = pd.to_numeric(frame[col], errors="coerce") / 100
            rename[col] = str(col)[: -len("_cents")]
    return out.rename(columns=rename)


def _label(name: str) -> str:
    text = str(name).replace("_", " ").strip()
    text = text[:1].upper() + text[1:]
    return text.replace(" id", " ID").replace(" pct", " %").replace("Cei", "CEI").replace("Dso", "DSO")


def money_columns(frame: pd.DataFrame) -> dict[str, Any]:
    """Column config for a frame about to go through :func:`display_frame`: readable headers
    ("Days past due"), and money columns in currency units with thousands separators."""
    config: dict[str, Any] = {}
    for col in frame.columns:
        name = str(col)
        if name.endswith("_cents"):
            name = name[: -len("_cents")]
            config[name] = st.column_config.NumberColumn(_label(name), format="%,.2f")
        elif name.endswith("_pct"):
            config[name] = st.column_config.NumberColumn(_label(name), format="%.1f")
        else:
            config[name] = st.column_config.Column(_label(name))
    return config




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


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``frame`` whose text cells that a spreadsheet would run as a formula (starting with
    ``= + - @``, tab or carriage return) are prefixed with ``'`` (CSV injection, OWASP advice).
    Numeric columns are untouched."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = out[col].map(lambda v: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v)
    return out


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as UTF-8 CSV, with formula-like text neutralised (:func:`neutralise_formulas`)."""
    return neutralise_formulas(frame).to_csv(index=False).encode("utf-8")


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
    shown = display_frame(frame)
    config = money_columns(frame)
    config.update(column_config or {})
    result = st.dataframe(shown, hide_index=True, column_config=config, key=key, height=height, **kwargs)
    if downloads:
        download_buttons(shown, name, key=key or name)
    return result

