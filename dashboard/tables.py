"""Tables and downloads: money columns in currency units, readable headers, safe CSV and Excel files.
"""
from __future__ import annotations

import io
from typing import Any

import pandas as pd
import streamlit as st

from analytics.exports import neutralise_formulas, safe_csv  # noqa: F401  (re-exported as ui.neutralise_formulas)
from dashboard.feedback import empty_state

# Streamlit's own "Download as CSV" in every st.dataframe / st.data_editor toolbar writes cells as they are
# (a customer named "=cmd|' /C calc'!A0" becomes a live formula). It is switched off for the whole app;
# every table gets the product's own CSV/Excel buttons instead (:func:`download_buttons`, neutralised).
# .streamlit/config.toml sets the same option for `streamlit run` from the repository root; setting it here
# also covers any other launch (it reaches the browser from the session's next script run on).
st.set_option("client.disableDataExport", True)


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
    shown = display_frame(frame)
    config = money_columns(frame)
    config.update(column_config or {})
    result = st.dataframe(shown, hide_index=True, column_config=config, key=key, height=height, **kwargs)
    if downloads:
        download_buttons(shown, name, key=key or name)
    return result

