"""Files the product writes for people to open in a spreadsheet: formula (CSV) injection kept inert.

A cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
formula by Excel, LibreOffice and Google Sheets (``=cmd|' /C calc'!A0``, ``=HYPERLINK(...)``). Every
CSV the product writes (table downloads, row-error reports, the dunning zip's ``index.csv``) passes
its cells through :func:`neutralise_formulas`, which prefixes such text with ``'`` (OWASP's advice):
the spreadsheet then shows the text, never runs it. Numbers (int, float, Decimal columns) are left
alone, so a negative amount stays a number.

This module has no Streamlit import: the dashboard (``dashboard.tables``), the loaders' CLI and
``analytics.dunning`` all use this one function.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula.

    Parameters
    ----------
    value : any
        A cell value; only ``str`` values are changed.

    Returns
    -------
    any
        The same value, or ``"'" + value`` for formula-like text.

    Example
    -------
    >>> neutralise_cell("=1+1"), neutralise_cell("ACME"), neutralise_cell(-5)
    ("'=1+1", 'ACME', -5)
    """
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``frame`` whose formula-like text cells are prefixed with ``'``; numeric columns untouched.

    Parameters
    ----------
    frame : pandas.DataFrame

    Returns
    -------
    pandas.DataFrame
        A new frame (``frame`` is not modified).

    Example
    -------
    >>> neutralise_formulas(pd.DataFrame({"name": ["=cmd|' /C calc'!A0", "ACME"], "n": [-1, 2]}))["name"].tolist()
    ["'=cmd|' /C calc'!A0", 'ACME']
    """
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = out[col].map(neutralise_cell)
    return out


def safe_csv(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text (no index) with formula-like cells neutralised.

    Parameters
    ----------
    frame : pandas.DataFrame

    Returns
    -------
    str

    Example
    -------
    >>> safe_csv(pd.DataFrame({"skipped": ["=1+1"]}))
    "skipped\\n'=1+1\\n"
    """
    return neutralise_formulas(frame).to_csv(index=False)
