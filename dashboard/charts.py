"""Plotly figures shared by the pages. Input frames come straight from :mod:`analytics`."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
# Green (current) to dark red (oldest): one colour per aging bucket, by bucket order.
BUCKET_COLOURS = ["#2E8B57", "#9ACD32", "#F2C14E", "#F08A4B", "#D9534F", "#8B1E3F", "#5A0F2A", "#3B0A1C"]
LINE_COLOURS = ["#1F6F8B", "#2E8B57", "#D9534F", "#8E6C8A", "#F2C14E", "#5B8E7D", "#BC4B51", "#6C757D"]


def _layout(fig: go.Figure, height: int = 340, **kw) -> go.Figure:
    settings = dict(height=height, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.18),
                    hovermode="x unified")
    settings.update(kw)
    fig.update_layout(**settings)
    return fig


def _colour(order: int) -> str:
    return BUCKET_COLOURS[min(int(order), len(BUCKET_COLOURS) - 1)]


def has_amounts(frame: pd.DataFrame | None, column: str = "open_cents") -> bool:
    """True when a chart of ``column`` would show anything (some non-zero amount); else the page shows an
    empty state instead of a chart whose axis reads "1, 1, 0, −1, −1".

    Example
    -------
    >>> has_amounts(pd.DataFrame({"open_cents": [0, 0]}))
    False
    """
    return frame is not None and not frame.empty and column in frame.columns \
        and bool(pd.to_numeric(frame[column], errors="coerce").fillna(0).abs().sum() > 0)


def aging_bar(aging: pd.DataFrame, currency: str) -> go.Figure:
    """Open amount per aging bucket (a ``kpis.aging`` frame); bars are selectable (x = bucket label)."""
    frame = aging.sort_values("bucket_order")
    units = frame["open_cents"] / 100
    fig = go.Figure(go.Bar(
        x=frame["bucket"], y=units, marker_color=[_colour(o) for o in frame["bucket_order"]],
        customdata=frame[["items", "customers"]] if {"items", "customers"} <= set(frame.columns) else None,
        hovertemplate="%{x}: %{y:,.0f} " + currency
        + ("<br>%{customdata[0]} items, %{customdata[1]} customers" if "items" in frame.columns else "")
        + "<extra></extra>",
    ))
    fig.update_yaxes(title=currency, tickformat=",.0f")
    fig.update_xaxes(title="Days past due", type="category")
    return _layout(fig, hovermode="closest", showlegend=False)


def aging_stacked(trend: pd.DataFrame, currency: str) -> go.Figure:
    """Stacked open amount per bucket over time (a ``kpis.aging_trend`` frame)."""
    fig = go.Figure()
    for (order, bucket), part in trend.sort_values(["bucket_order", "as_of"]).groupby(["bucket_order", "bucket"],
                                                                                     sort=True):
        fig.add_bar(x=pd.to_datetime(part["as_of"]), y=part["open_cents"] / 100, name=str(bucket),
                    marker_color=_colour(order), hovertemplate="%{y:,.0f}")
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title=currency, tickformat=",.0f")
    return _layout(fig, height=380)


def dso_trend(trend: pd.DataFrame) -> go.Figure:
    """DSO, best possible DSO and average days delinquent over time (a ``kpis.kpi_trend`` frame)."""
    fig = go.Figure()
    x = pd.to_datetime(trend["as_of"])
    for col, name, colour, dash in (("dso_standard", "DSO", LINE_COLOURS[0], None),
                                    ("bpdso", "Best possible DSO", LINE_COLOURS[1], "dot"),
                                    ("add", "Avg days delinquent", LINE_COLOURS[2], None)):
        fig.add_scatter(x=x, y=trend[col], name=name, mode="lines+markers", line=dict(color=colour, dash=dash),
                        hovertemplate="%{y:.1f} days")
    fig.update_yaxes(title="days", rangemode="tozero")
    return _layout(fig)


def lines(frame: pd.DataFrame, x: str, y: str, by: str, *, title: str = "", percent: bool = False,
          money: bool = False, height: int = 320) -> go.Figure:
    """One line per ``by`` value (e.g. a collector) of ``y`` over ``x``."""
    fig = go.Figure()
    for i, (name, part) in enumerate(frame.groupby(by, sort=True, dropna=False)):
        values = part[y] / 100 if money else part[y]
        fig.add_scatter(x=pd.to_datetime(part[x]), y=values, name=str(name), mode="lines+markers",
                        line=dict(color=LINE_COLOURS[i % len(LINE_COLOURS)]),
                        hovertemplate="%{y:,.1f}" + ("%" if percent else ""))
    fig.update_yaxes(title=title, tickformat=",.0f" if money else None, rangemode="tozero")
    return _layout(fig, height=height)


def hbar(frame: pd.DataFrame, x: str, y: str, *, title: str = "", money: bool = False, colour: str | None = None,
         height: int | None = None) -> go.Figure:
    """Horizontal bars (e.g. disputes by reason), largest on top."""
    frame = frame.sort_values(x)
    values = frame[x] / 100 if money else frame[x]
    fig = go.Figure(go.Bar(x=values, y=frame[y].astype(str), orientation="h", marker_color=colour or LINE_COLOURS[0],
                           hovertemplate="%{y}: %{x:,.0f}<extra></extra>"))
    fig.update_xaxes(title=title, tickformat=",.0f")
    return _layout(fig, height=height or max(220, 40 + 28 * len(frame)), hovermode="closest", showlegend=False)
