"""The shared sidebar filters (as-of date, business unit, region, currency, collector), kept across pages,
and the page title and period picker that state them.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Iterable

import pandas as pd
import sqlalchemy as sa
import streamlit as st

from analytics import schema
from analytics.ledger import LedgerFilter, default_as_of
from dashboard.access import current_user
from dashboard.formatting import plain
from dashboard.session import cached


@dataclasses.dataclass(frozen=True)
class LedgerFacts:
    """What the filter widgets offer: values present in the ledger and its date range."""

    first_date: dt.date | None
    last_date: dt.date | None
    business_units: tuple[str, ...]
    regions: tuple[str, ...]
    currencies: tuple[str, ...]  # most used first
    collectors: tuple[tuple[str, str], ...]  # (id, name)
    customers: int


def _ledger_facts(conn: sa.Connection) -> LedgerFacts:
    c, i = schema.customers, schema.invoices

    def distinct(col) -> tuple[str, ...]:
        rows = conn.execute(sa.select(col).where(col.is_not(None)).distinct().order_by(col)).scalars()
        return tuple(str(v) for v in rows)

    first = conn.execute(sa.select(sa.func.min(i.c.invoice_date))).scalar()
    currencies = tuple(
        row[0] for row in conn.execute(
            sa.select(i.c.currency, sa.func.count().label("n")).group_by(i.c.currency)
            .order_by(sa.desc("n"), i.c.currency)))
    collectors = tuple(
        (row.id, row.name) for row in conn.execute(
            sa.select(schema.collectors.c.id, schema.collectors.c.name).order_by(schema.collectors.c.name)))
    last = default_as_of(conn, today_if_empty=False)  # the ledger's one rule for the default as-of
    n_customers = conn.execute(sa.select(sa.func.count()).select_from(c)).scalar()
    return LedgerFacts(
        first_date=_as_date(first), last_date=_as_date(last),
        business_units=distinct(c.c.business_unit), regions=distinct(c.c.region),
        currencies=currencies, collectors=collectors, customers=int(n_customers or 0),
    )


def _as_date(value) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()


def ledger_facts() -> LedgerFacts:
    return cached(_ledger_facts)


def _main_currency() -> str | None:
    """The ledger's main currency: the sidebar's default (:func:`analytics.kpis.main_currency`)."""
    from analytics import kpis

    return cached(kpis.main_currency, LedgerFilter())


def _persisted(widget_key: str, store_key: str, default):
    """Seed a widget from its persistent copy (widget state is dropped on pages that don't draw it)."""
    if store_key not in st.session_state:
        st.session_state[store_key] = default
    # Always re-seed: on another page the widget is a new widget (its id includes the page), and a
    # user change has already been copied to the store by the on_change callback.
    st.session_state[widget_key] = st.session_state[store_key]


def _remember(widget_key: str, store_key: str) -> None:
    st.session_state[store_key] = st.session_state[widget_key]


def sidebar_filters(*, show_collector: bool = True) -> tuple[dt.date, LedgerFilter]:
    """The shared sidebar filters: as-of date, business unit, region, currency, collector.

    Set once, kept in ``st.session_state`` across pages. A collector's filter is forced to their
    own portfolio (:func:`analytics.auth.scope_filter`), whatever the session says.

    Returns
    -------
    (datetime.date, LedgerFilter)
    """
    from analytics import auth

    user = current_user()
    facts = ledger_facts()
    today = dt.date.today()
    default_as_of = facts.last_date or today
    main_cur = _main_currency()
    is_collector = user is not None and user.role == "collector"

    with st.sidebar:
        st.subheader("Filters")
        if st.session_state.get("f_as_of_default") != default_as_of:
            # First run, or the ledger's end moved (an import, a new ledger): the default follows it.
            st.session_state["f_as_of"] = default_as_of
            st.session_state["f_as_of_default"] = default_as_of
        _persisted("w_as_of", "f_as_of", default_as_of)
        as_of = st.date_input(
            "As of", key="w_as_of", on_change=_remember, args=("w_as_of", "f_as_of"),
            min_value=facts.first_date or dt.date(1990, 1, 1), max_value=max(today, default_as_of),
            help="Every figure is reconstructed as it stood at the end of this day.")
        st.session_state["f_as_of"] = as_of
        ledger_end_notice(as_of, facts.last_date)
        flt_kwargs: dict[str, tuple[str, ...]] = {}

        if facts.business_units:
            flt_kwargs["business_units"] = _kept_multiselect("Business unit", facts.business_units, "bu",
                                                             "All business units")
        if facts.regions:
            flt_kwargs["regions"] = _kept_multiselect("Region", facts.regions, "region", "All regions")
        if facts.currencies:
            _persisted("w_currency", "f_currency", main_cur or facts.currencies[0])
            if st.session_state["w_currency"] not in facts.currencies:
                st.session_state["w_currency"] = st.session_state["f_currency"] = main_cur or facts.currencies[0]
            cur = st.selectbox(
                "Currency", facts.currencies, key="w_currency", on_change=_remember,
                args=("w_currency", "f_currency"),
                help="Amounts are never converted: one currency at a time.")
            flt_kwargs["currencies"] = (cur,)
            reporting_currency_picker(facts.currencies)  # fx: convert into one currency (pages that can)
        if facts.collectors and show_collector and not is_collector:
            names = dict(facts.collectors)
            flt_kwargs["collectors"] = _kept_multiselect("Collector", tuple(names), "collector", "All collectors",
                                                         format_func=lambda cid: names.get(cid, cid))
        elif is_collector:
            st.caption(f"Portfolio: {plain(dict(facts.collectors).get(user.collector_id, user.collector_id))}")

    flt = LedgerFilter(**flt_kwargs)
    if user is not None:
        flt = auth.scope_filter(user, flt)
    return as_of, flt


REPORT_KEY = "f_report_currency"


def reporting_currency_picker(currencies: Iterable[str]) -> str | None:
    """Sidebar "Report in": None (each figure in its transaction currency, the Currency filter) or a
    currency every amount is converted into at the as-of date's exchange rates (:mod:`analytics.fx`).

    Kept across pages in ``st.session_state["f_report_currency"]``; :func:`reporting_currency` reads it.

    Parameters
    ----------
    currencies : iterable of str
        The ledger's currencies (EUR, the rates' base, is always offered).

    Returns
    -------
    str or None

    Example
    -------
    >>> reporting_currency_picker(("USD", "GBP"))  # doctest: +SKIP
    """
    options = [None, *sorted(set(currencies) | {"EUR"})]
    _persisted("w_report_currency", REPORT_KEY, None)
    if st.session_state["w_report_currency"] not in options:
        st.session_state["w_report_currency"] = st.session_state[REPORT_KEY] = None
    return st.selectbox("Report in", options, key="w_report_currency", on_change=_remember,
                        args=("w_report_currency", REPORT_KEY),
                        format_func=lambda c: "Transaction currency" if c is None else f"{c} (all converted)",
                        help="Convert every currency into one at the as-of date's exchange rates (ECB rates "
                             "loaded on the Data page; the rate date is stated). Pages that cannot convert "
                             "keep the Currency filter.")


def reporting_currency() -> str | None:
    """The reporting currency chosen in the sidebar, or None (transaction currency).

    Returns
    -------
    str or None

    Example
    -------
    >>> rep = reporting_currency()  # doctest: +SKIP
    """
    return st.session_state.get(REPORT_KEY)


def _kept_multiselect(label: str, options: tuple[str, ...], name: str, placeholder: str,
                      **kwargs) -> tuple[str, ...]:
    """A sidebar multiselect whose choice is kept across pages (widget ``w_<name>``, store ``f_<name>``) and
    forgets values the ledger no longer has."""
    widget, store = f"w_{name}", f"f_{name}"
    _persisted(widget, store, [])
    _drop_unknown(widget, store, options)
    return tuple(st.multiselect(label, list(options), key=widget, on_change=_remember, args=(widget, store),
                                placeholder=placeholder, **kwargs))


def _drop_unknown(widget_key: str, store_key: str, options: Iterable[str]) -> None:
    """Forget kept values the ledger no longer has (e.g. after loading another ledger)."""
    options = set(options)
    value = st.session_state.get(widget_key) or []
    kept = [v for v in value if v in options]
    if kept != list(value):
        st.session_state[widget_key] = st.session_state[store_key] = kept


def ledger_end_notice(as_of: dt.date, last_date: dt.date | None) -> None:
    """Say when the ledger ends, and warn when the chosen as-of date is past it (figures after the
    ledger's last invoice or receipt show no new sales or payments, only work recorded since).

    Parameters
    ----------
    as_of : datetime.date
        The chosen as-of date.
    last_date : datetime.date or None
        The ledger's last business date (:func:`analytics.ledger.default_as_of`); None for an empty ledger.

    Returns
    -------
    None

    Example
    -------
    >>> ledger_end_notice(dt.date(2026, 11, 30), dt.date(2026, 10, 31))  # doctest: +SKIP
    """
    if last_date is None:
        st.caption("The ledger is empty: load data on the Data page.")
        return
    st.caption(f"The ledger ends {last_date:%d %b %Y} (its last invoice or receipt).")
    if as_of > last_date:
        st.warning(f"The as-of date is {(as_of - last_date).days} days after the ledger's end "
                   f"({last_date:%d %b %Y}): no invoice or payment after that day is known, so sales, CEI and "
                   "aging only move with the calendar.", icon=":material/event_busy:")


def filter_caption(as_of: dt.date, flt: LedgerFilter) -> str:
    parts = [f"As of {as_of:%d %b %Y}"]
    if flt.currencies:
        parts.append(", ".join(flt.currencies))
    for label, values in (("BU", flt.business_units), ("region", flt.regions), ("collector", flt.collectors)):
        if values:
            parts.append(f"{label}: {', '.join(plain(v) for v in values)}")
    return " · ".join(parts)




def page_title(title: str, as_of: dt.date | None = None, flt: LedgerFilter | None = None) -> None:
    st.title(title)
    if as_of is not None:
        st.caption(filter_caption(as_of, flt or LedgerFilter()))



PERIODS = ("Month to date", "Last 30 days", "Last 90 days", "Quarter to date", "Year to date")


def period_picker(as_of: dt.date, key: str, default: str = "Last 90 days") -> tuple[dt.date, dt.date]:
    """A period ending at the as-of date, chosen with a segmented control; returns ``(start, end)``."""
    choice = st.segmented_control("Period", PERIODS, default=default, key=key) or default
    if choice == "Month to date":
        start = as_of.replace(day=1)
    elif choice == "Last 30 days":
        start = as_of - dt.timedelta(days=29)
    elif choice == "Quarter to date":
        start = as_of.replace(month=3 * ((as_of.month - 1) // 3) + 1, day=1)
    elif choice == "Year to date":
        start = as_of.replace(month=1, day=1)
    else:
        start = as_of - dt.timedelta(days=89)
    st.caption(f"Period {start:%d %b %Y} – {as_of:%d %b %Y}")
    return start, as_of



def frame_currency(frame: pd.DataFrame, flt: LedgerFilter) -> str:
    """The currency an analytics frame is in (``attrs["currency"]``), else the filter's."""
    return frame.attrs.get("currency") or (flt.currencies[0] if flt.currencies else "")
