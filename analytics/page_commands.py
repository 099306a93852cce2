"""The commands that print what a dashboard page shows: ``kpis`` (Overview), ``aging``, ``sla``, ``collectors``,
``disputes``, ``promises`` and ``dunning``.

Each command calls the same public analytics function as its page (named in its help), with the sidebar's
filters (``--as-of``, ``--currency``, ``--business-unit``, ``--region``, ``--collector``, ``--customer``) and,
where the page has a period picker, ``--from`` / ``--to`` (default: the 90 days ending at the as-of date, as the
page). Output: a table for people (money in currency units with separators), ``--json`` (``*_cents`` keys become
currency units without the suffix) or ``--csv`` (the page's main table), to stdout or ``--out FILE``. Options are
parsed by :mod:`analytics.cli_support`, so a bad value is one line and exit code 2.

Example
-------
>>> from analytics.cli import main
>>> main(["aging", "--by", "customer", "--bucket", "120+", "--csv", "--db", "duckdb:///data/demo.db"])  # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

import pandas as pd

from analytics import cli_support as cs

# ================================================================================================
# kpis (Overview)
# ================================================================================================
_SNAPSHOT_ROWS = (
    ("AR total", "ar_total", ""), ("Current", "current_total", ""), ("Overdue", "overdue_total", ""),
    ("Over 90 days", "over_90_total", ""), ("% current", "pct_current", " %"),
    ("Credit sales (window)", "credit_sales", ""), ("DSO (standard)", "dso_standard", " d"),
    ("DSO (countback)", "dso_countback", " d"), ("Best possible DSO", "bpdso", " d"),
    ("Average days delinquent", "add", " d"), ("CEI (month to date)", "cei_month", " %"),
    ("Unapplied cash", "unapplied_cash", ""),
)


def _configure_kpis(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics kpis`` (the Overview page's figures, :func:`analytics.kpis.snapshot`)."""
    from analytics.kpis import DEFAULT_WINDOW

    cs.add_filter_arguments(parser)
    parser.add_argument("--window", type=cs.positive_int, default=DEFAULT_WINDOW,
                        help=f"DSO window N in days (default {DEFAULT_WINDOW})")
    parser.add_argument("--trend", type=cs.positive_int, default=None, metavar="MONTHS",
                        help="the Overview's trend instead: AR, DSO family and CEI at the last MONTHS month ends "
                             "and the as-of date (the page shows 12)")
    add_report_currency_argument(parser)
    cs.add_output_arguments(parser)
    parser.set_defaults(run=_run_kpis)


def add_report_currency_argument(parser: argparse.ArgumentParser) -> None:
    """``--report-currency CUR``: every currency converted into CUR at the as-of date's rates
    (:mod:`analytics.fx`); ``--currency`` is then ignored.

    Example
    -------
    >>> p = argparse.ArgumentParser(); add_report_currency_argument(p)
    >>> p.parse_args(["--report-currency", "eur"]).report_currency
    'EUR'
    """
    parser.add_argument("--report-currency", "--currency-report", dest="report_currency", type=str.upper,
                        default=None, metavar="CUR",
                        help="convert every currency into CUR at the as-of date's exchange rates (rate date stated)")


def month_ends_to(as_of: dt.date, months: int) -> list[dt.date]:
    """The last ``months`` month ends up to ``as_of``, and ``as_of`` itself (the dates of the pages' trends).

    Example
    -------
    >>> month_ends_to(dt.date(2026, 10, 15), 2)
    [datetime.date(2026, 8, 31), datetime.date(2026, 9, 30), datetime.date(2026, 10, 15)]
    """
    from analytics.kpis import last_month_ends

    dates = last_month_ends(as_of, months)
    return dates if as_of in dates else [*dates, as_of]


def _run_kpis(args: argparse.Namespace) -> int:
    """Compute :func:`analytics.kpis.snapshot` for the CLI arguments and print it."""
    from analytics.kpis import kpi_trend, snapshot

    flt = cs.ledger_filter(args)

    def compute(conn):
        cs.check_filter(conn, flt)
        day = cs.as_of(conn, args)
        if args.report_currency:
            from analytics import fx

            if args.trend:
                return day, fx.kpi_trend(conn, month_ends_to(day, args.trend), flt, args.report_currency,
                                         window=args.window)
            return day, fx.snapshot(conn, day, flt, args.report_currency, window=args.window)
        if args.trend:
            return day, kpi_trend(conn, month_ends_to(day, args.trend), flt, window=args.window)
        return day, snapshot(conn, day, flt, window=args.window)

    day, snap = cs.run_on_ledger(args, compute)
    if args.trend:
        cur = snap.attrs.get("currency")
        payload = {"as_of": day.isoformat(), "currency": cur, "window": args.window, "trend": cs.records(snap)}
        headers = {"as_of": "Date", "ar_cents": "AR", "overdue_cents": "Overdue", "pct_current": "% current",
                   "dso_standard": "DSO", "dso_countback": "DSO countback", "bpdso": "BPDSO", "add": "ADD",
                   "cei_month": "CEI MTD %"}
        return cs.emit(args, payload, snap, lambda: f"KPI trend ({cur}, DSO window {args.window} days)\n\n"
                       + cs.text_table(snap, headers, cur))
    table = pd.DataFrame([(label, snap[key]) for label, key, _ in _SNAPSHOT_ROWS]
                         + [(f"Aging {k}", v) for k, v in snap["aging"].items()], columns=["metric", "value"])
    return cs.emit(args, snap, table, lambda: format_snapshot(snap))


def format_snapshot(snap: dict) -> str:
    """A readable table of a :func:`analytics.kpis.snapshot` dict (what ``kpis`` prints without ``--json``).

    Example
    -------
    >>> print(format_snapshot(snap))  # doctest: +SKIP
    """
    cur = snap["currency"]
    rates = [f"  {r['text']}" for r in snap.get("rates", {}).values()]

    def num(value, suffix: str) -> str:
        if value is None:
            return "n/a"
        return f"{value:,.2f}{suffix}" if suffix else f"{cur} {value:,.2f}"

    lines = [f"AR KPIs as of {snap['as_of']} ({cur}, DSO window {snap['window']} days)", ""]
    rows = [(label, num(snap[key], suffix)) for label, key, suffix in _SNAPSHOT_ROWS]
    rows += [("Open items", f"{snap['open_items']:,}"), ("Customers with balance", f"{snap['customers_with_balance']:,}")]
    width = max(len(k) for k, _ in rows)
    lines += [f"{k:<{width}}  {v:>22}" for k, v in rows]
    lines += ["", "Aging", *[f"{k:<{width}}  {num(v, ''):>22}" for k, v in snap["aging"].items()]]
    if rates:
        lines += ["", f"Converted into {cur} at the rates of {snap['rate_date']} or the latest before:", *rates]
    return "\n".join(lines)


# ================================================================================================
# aging
# ================================================================================================
def _configure_aging(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics aging`` (the Aging page: :func:`analytics.kpis.aging`,
    :func:`analytics.kpis.aging_detail`)."""
    cs.add_filter_arguments(parser)
    parser.add_argument("--by", choices=("bucket", "customer", "invoice"), default="bucket",
                        help="bucket (default): open amount per bucket; customer: per customer, one column per "
                             "bucket; invoice: every open item")
    parser.add_argument("--bucket", default=None, metavar="LABEL",
                        help="only this bucket (Current, 1-30, 31-60, 61-90, 91-120, 120+) for --by customer|invoice")
    parser.add_argument("--history", type=cs.positive_int, default=None, metavar="MONTHS",
                        help="the page's history instead: open amount per bucket at the last MONTHS month ends and "
                             "the as-of date, one column per bucket (the page shows 6, 12 or 24)")
    parser.add_argument("--limit", type=cs.positive_int, default=50, help="rows printed for people (default 50)")
    parser.add_argument("--basis", choices=("due", "document"), default="due",
                        help="age by days past the due date (default; per instalment where an invoice has a "
                             "schedule) or by days since the document date")
    parser.add_argument("--edges", type=edges_arg, default=None, metavar="DAYS",
                        help="bucket edges in days, e.g. 0,30,60,90,120 (the default)")
    add_report_currency_argument(parser)
    cs.add_output_arguments(parser)
    parser.set_defaults(run=_run_aging)


def edges_arg(text: str) -> tuple[int, ...]:
    """``--edges 0,30,60``: strictly increasing whole days, else a usage error.

    Example
    -------
    >>> edges_arg("0, 30,60")
    (0, 30, 60)
    """
    try:
        edges = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of whole days such as 0,30,60,90") from None
    if not edges or any(b <= a for a, b in zip(edges, edges[1:])):
        raise argparse.ArgumentTypeError(f"{text!r}: edges must increase, such as 0,30,60,90")
    return edges


def aging_by_customer(detail: pd.DataFrame, buckets) -> pd.DataFrame:
    """Per-customer aging from :func:`analytics.kpis.aging_detail` rows: open amount in each bucket, total,
    open items and worst days past due, largest total first.

    Parameters
    ----------
    detail : pandas.DataFrame
        :func:`analytics.kpis.aging_detail` output.
    buckets : sequence of analytics.kpis.Bucket
        Column order (one ``<label>_cents`` column each).

    Returns
    -------
    pandas.DataFrame
        ``customer_id, customer_name, <label>_cents..., open_cents, items, max_days_past_due``.

    Example
    -------
    >>> aging_by_customer(aging_detail(conn, as_of), DEFAULT_BUCKETS).head(1)  # doctest: +SKIP
    """
    labels = [b.label for b in buckets]
    cols = ["customer_id", "customer_name", *[f"{b}_cents" for b in labels], "open_cents", "items",
            "max_days_past_due"]
    if detail.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c not in ("customer_id", "customer_name") else object)
                             for c in cols})
    wide = (detail.pivot_table(index=["customer_id", "customer_name"], columns="bucket", values="open_cents",
                               aggfunc="sum", fill_value=0)
            .reindex(columns=labels, fill_value=0).astype("int64"))
    wide.columns = [f"{b}_cents" for b in wide.columns]
    totals = detail.groupby(["customer_id", "customer_name"]).agg(
        open_cents=("open_cents", "sum"), items=("invoice_id", "count"), max_days_past_due=("days_past_due", "max"))
    out = wide.join(totals).reset_index()
    out = out.sort_values(["open_cents", "customer_id"], ascending=[False, True], ignore_index=True)
    return out[cols]


def _run_aging(args: argparse.Namespace) -> int:
    """Print the aging at the as-of date by bucket, customer or invoice."""
    from analytics.errors import UserError
    from analytics.kpis import DEFAULT_BUCKETS, aging, aging_detail, aging_trend

    from analytics.kpis import make_buckets

    flt = cs.ledger_filter(args)
    buckets = make_buckets(args.edges) if args.edges else DEFAULT_BUCKETS
    labels = [b.label for b in buckets]
    if args.report_currency and (args.by != "bucket" or args.history):
        raise UserError("--report-currency converts the aging by bucket: leave out --by and --history")
    if args.bucket is not None and args.bucket not in labels:
        raise UserError(f"--bucket {args.bucket!r}: not an aging bucket (one of {', '.join(labels)})")
    if args.bucket is not None and (args.by == "bucket" or args.history):
        raise UserError("--bucket needs --by customer or --by invoice")
    if args.history and args.by != "bucket":
        raise UserError("--history is by bucket: leave out --by")

    def compute(conn):
        cs.check_filter(conn, flt)
        day = cs.as_of(conn, args)
        if args.report_currency:
            from analytics import fx

            return day, fx.aging(conn, day, flt, args.report_currency, buckets, basis=args.basis)
        if args.history:
            return day, aging_trend(conn, month_ends_to(day, args.history), flt, buckets)
        if args.by == "bucket":
            return day, aging(conn, day, flt, buckets, basis=args.basis)
        return day, aging_detail(conn, day, flt, args.bucket, buckets=buckets, basis=args.basis)

    day, frame = cs.run_on_ledger(args, compute)
    cur = frame.attrs.get("currency")
    if args.history:
        table = (frame.pivot(index="as_of", columns="bucket", values="open_cents").reindex(columns=labels)
                 .rename(columns=lambda b: f"{b}_cents").reset_index())
        table["as_of"] = [d.date() if hasattr(d, "date") else d for d in table["as_of"]]
        payload = {"as_of": day.isoformat(), "currency": cur, "history": cs.records(table)}
        headers = {"as_of": "Date", **{f"{b}_cents": b for b in labels}}
        return cs.emit(args, payload, table, lambda: f"Aging history ({cur})\n\n" + cs.text_table(table, headers, cur))
    if args.by == "bucket":
        table = frame[["bucket", "open_cents", "items", "customers"]]
        headers = {"bucket": "Bucket", "open_cents": "Open", "items": "Items", "customers": "Customers"}
    elif args.by == "customer":
        table = aging_by_customer(frame, buckets)
        headers = {"customer_id": "Customer", "customer_name": "Name",
                   **{f"{b}_cents": b for b in labels if args.bucket in (None, b)},
                   "open_cents": "Total", "items": "Items", "max_days_past_due": "Worst DPD"}
    else:
        table = frame.drop(columns=["bucket_order"])
        headers = {"customer_id": "Customer", "invoice_id": "Document", "doc_type": "Type", "invoice_date": "Date",
                   "due_date": "Due", "days_past_due": "DPD", "bucket": "Bucket", "open_cents": "Open"}
    payload = {"as_of": day.isoformat(), "currency": cur, "by": args.by, "bucket": args.bucket,
               "basis": args.basis, "rows": cs.records(table)}
    title = f"Aging as of {day.isoformat()} by {args.by}" + (f", bucket {args.bucket}" if args.bucket else "") \
        + f" ({cur})" + (" by document date" if args.basis == "document" else "")
    if frame.attrs.get("rates"):
        payload["rates"] = frame.attrs["rates"]
        title += "\nConverted at: " + "; ".join(frame.attrs["rates"].values())
    return cs.emit(args, payload, table, lambda: title + "\n\n" + cs.text_table(table, headers, cur, args.limit))


# ================================================================================================
# sla
# ================================================================================================
def _configure_sla(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics sla`` (the SLA page: :func:`analytics.kpis.sla.sla_status` and
    :func:`analytics.kpis.sla.sla_breaches`)."""
    cs.add_filter_arguments(parser)
    parser.add_argument("--targets", default=None, metavar="FILE",
                        help="SLA targets TOML (default: $AR_SLA_FILE, else the product's defaults)")
    parser.add_argument("--period-days", type=int, default=None, metavar="N",
                        help="evaluation period of CEI, disputes and promises: the last N days (0 = month to date; "
                             "default: the targets' setting)")
    parser.add_argument("--breaches", action="store_true",
                        help="--csv: the accounts behind each breach (one row per account and metric) instead of "
                             "the status")
    parser.add_argument("--limit", type=cs.positive_int, default=10,
                        help="breach rows printed per metric for people (default 10)")
    add_report_currency_argument(parser)  # the status converted; breach accounts stay in --currency's currency
    cs.add_output_arguments(parser)
    parser.set_defaults(run=_run_sla)


def _sla_targets(args: argparse.Namespace):
    from analytics.kpis import sla

    path = args.targets or os.environ.get("AR_SLA_FILE")
    targets = sla.SlaTargets.from_toml(path) if path else sla.DEFAULT_TARGETS
    if args.period_days is not None:
        targets = sla.SlaTargets.from_dict({**targets.to_dict(), "period_days": args.period_days or None})
    return targets


def _run_sla(args: argparse.Namespace) -> int:
    """Print the SLA status as of the date and the accounts behind each breach."""
    from analytics.kpis import sla

    flt = cs.ledger_filter(args)
    targets = _sla_targets(args)

    def compute(conn):
        cs.check_filter(conn, flt)
        day = cs.as_of(conn, args)
        if args.report_currency:
            from analytics import fx

            return day, fx.sla_status(conn, day, flt, args.report_currency, targets), \
                sla.sla_breaches(conn, day, flt, targets)
        status = sla.sla_status(conn, day, flt, targets)
        return day, status, sla.sla_breaches(conn, day, flt, targets, status=status)

    day, status, breaches = cs.run_on_ledger(args, compute)
    cur = status.attrs["currency"]
    b_cur = next((b.attrs.get("currency") for b in breaches.values() if b.attrs.get("currency")), cur)
    start, end = status.attrs["period_start"], status.attrs["period_end"]
    listed = pd.concat([b.assign(metric=m)[["metric", *b.columns]] for m, b in breaches.items()], ignore_index=True)
    payload = {"as_of": day.isoformat(), "currency": cur, "period_start": start.isoformat(),
               "period_end": end.isoformat(), "targets": targets.to_dict(), "status": cs.records(status),
               "breaches": {m: cs.records(b) for m, b in breaches.items()}}
    if status.attrs.get("rates") is not None:
        payload.update(rates=status.attrs["rates"], rate_date=status.attrs["rate_date"], breaches_currency=b_cur)

    def text() -> str:
        out = [f"SLA as of {day.isoformat()} ({cur}); period of CEI, disputes and promises {start} .. {end}",
               *[f"  {t}" for t in (status.attrs.get("rates") or {}).values()], ""]
        shown = status.assign(label=[sla.LABELS.get(m, m) for m in status["metric"]])
        out.append(cs.text_table(shown, {"label": "Metric", "target": "Target", "actual": "Actual",
                                         "status": "Status", "detail": "Detail"}))
        for metric, frame in breaches.items():
            if frame.empty:
                continue
            out += ["", f"Breach: {sla.LABELS.get(metric, metric)} ({len(frame):,} accounts, {b_cur})",
                    cs.text_table(frame, {"customer_id": "Customer", "customer_name": "Name",
                                          "collector_id": "Collector", "amount_cents": "Amount", "days": "Days",
                                          "detail": "Detail"}, b_cur, args.limit)]
        return "\n".join(out)

    return cs.emit(args, payload, listed if args.breaches else status, text)


# ================================================================================================
# collectors
# ================================================================================================
def _configure_collectors(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics collectors`` (the Collectors page:
    :func:`analytics.kpis.operations.collector_kpis`, with ``--trend`` :func:`~analytics.kpis.operations.collector_trend`)."""
    cs.add_filter_arguments(parser, period=True)
    parser.add_argument("--trend", action="store_true",
                        help="monthly trend per collector instead of the leaderboard (default period: the 12 "
                             "calendar months up to the as-of date, as the page)")
    add_report_currency_argument(parser)  # the leaderboard, at the period end's rates
    cs.add_output_arguments(parser)
    parser.set_defaults(run=_run_collectors)


def _trend_start(as_of: dt.date) -> dt.date:
    """First day of the month eleven months before ``as_of``'s month (the page's 12-month trend)."""
    months = as_of.year * 12 + as_of.month - 1 - 11
    return dt.date(months // 12, months % 12 + 1, 1)


def _run_collectors(args: argparse.Namespace) -> int:
    """Print the collector leaderboard for the period (or the monthly trend)."""
    from analytics.kpis import operations as ops

    flt = cs.ledger_filter(args)

    def compute(conn):
        cs.check_filter(conn, flt)
        day = cs.as_of(conn, args)
        if args.trend and args.start is None:
            args.start = _trend_start(args.end or day)
        start, end = cs.period(args, day)
        if args.report_currency:
            from analytics import fx

            return start, end, fx.collector_kpis(conn, start, end, flt, args.report_currency)
        fn = ops.collector_trend if args.trend else ops.collector_kpis
        return start, end, fn(conn, start, end, flt)

    if args.report_currency and args.trend:
        from analytics.errors import UserError

        raise UserError("--report-currency converts the leaderboard: leave out --trend")
    start, end, frame = cs.run_on_ledger(args, compute)
    cur = frame.attrs.get("currency")
    payload = {"from": start.isoformat(), "to": end.isoformat(), "currency": cur,
               "trend" if args.trend else "collectors": cs.records(frame)}
    if frame.attrs.get("rates") is not None:
        payload.update(rates=frame.attrs["rates"], rate_date=frame.attrs["rate_date"])
    if args.trend:
        headers = {"as_of": "Month end", "collector_name": "Collector", "ar_cents": "AR", "overdue_cents": "Overdue",
                   "collected_cents": "Collected", "activities": "Activities", "accounts_touched": "Contacted",
                   "ptp_kept_pct": "PTP kept %"}
    else:
        headers = {"collector_name": "Collector", "accounts": "Accounts", "ar_cents": "AR",
                   "overdue_cents": "Overdue", "collected_cents": "Collected", "cei": "CEI %",
                   "ptp_kept_pct": "PTP kept %", "activities_per_day": "Activities/day",
                   "severe_touched_pct": "61+ contacted %"}
    title = f"Collectors {'monthly trend' if args.trend else 'leaderboard'} {start} .. {end} ({cur})" + "".join(
        f"\n  {t}" for t in (frame.attrs.get("rates") or {}).values())
    return cs.emit(args, payload, frame, lambda: title + "\n\n" + cs.text_table(frame, headers, cur))


# ================================================================================================
# disputes and promises (the Disputes & Promises page)
# ================================================================================================
def _figures(row: dict, spec: list[tuple[str, str]], cur: str) -> str:
    """One figure a line: money keys (already in units, :func:`~analytics.cli_support.records`) with the
    currency and separators, counts with separators, rates and days with one decimal."""
    lines = []
    for key, label in spec:
        value = row.get(key)
        if value is None:
            shown = "n/a"
        elif key in _MONEY_FIGURES:
            shown = f"{cur} {value:,.2f}"
        else:
            shown = f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"
        lines.append(f"{label:<28}{shown:>20}")
    return "\n".join(lines)


_MONEY_FIGURES = {"open", "opened", "resolved", "promised", "collected"}


def _configure_period_report(parser: argparse.ArgumentParser, tables: dict, run) -> None:
    """Filters with a period, ``--table`` (the list shown and written by --csv), ``--limit`` and the outputs."""
    cs.add_filter_arguments(parser, period=True)
    parser.add_argument("--table", choices=list(tables), default=next(iter(tables)),
                        help="the list for --csv and for people: " + "; ".join(
                            f"{key}{' (default)' if i == 0 else ''} = {title.lower()}"
                            for i, (key, (title, _, _)) in enumerate(tables.items())))
    parser.add_argument("--limit", type=cs.positive_int, default=50, help="rows printed for people (default 50)")
    cs.add_output_arguments(parser)
    parser.set_defaults(run=run)


def _run_period_report(args: argparse.Namespace, name: str, stats_fn, figures: list[tuple[str, str]],
                       tables: dict) -> int:
    """A page of figures for a period (``stats_fn(conn, start, end, flt)``, one row) and lists
    (``tables[key] = (title, fn(conn, as_of, start, end, flt), headers)``): every list in the JSON, the
    ``--table`` one in the CSV and for people."""
    flt = cs.ledger_filter(args)

    def compute(conn):
        cs.check_filter(conn, flt)
        day = cs.as_of(conn, args)
        start, end = cs.period(args, day)
        return day, start, end, stats_fn(conn, start, end, flt), {
            key: fn(conn, day, start, end, flt) for key, (_, fn, _) in tables.items()}

    day, start, end, stats, lists = cs.run_on_ledger(args, compute)
    cur = stats.attrs.get("currency")
    stats_row = cs.records(stats)[0] if len(stats) else {}
    payload = {"as_of": day.isoformat(), "from": start.isoformat(), "to": end.isoformat(), "currency": cur,
               "stats": stats_row, **{key.replace("-", "_"): cs.records(frame) for key, frame in lists.items()}}
    title, _, headers = tables[args.table]
    table = lists[args.table]

    def text() -> str:
        return (f"{name} {start} .. {end}, as of {day} ({cur})\n\n{_figures(stats_row, figures, cur)}\n\n"
                f"{title}:\n{cs.text_table(table, headers, cur, args.limit)}")

    return cs.emit(args, payload, table, text)


def _dispute_tables() -> dict:
    from analytics.kpis import operations as ops

    return {
        "open": ("Disputes open at the as-of date", lambda conn, day, start, end, flt: ops.open_disputes(conn, day, flt),
                 {"dispute_id": "Dispute", "customer_id": "Customer", "customer_name": "Name",
                  "invoice_id": "Document", "reason_code": "Reason", "opened_date": "Opened", "age_days": "Age",
                  "amount_cents": "Amount"}),
        "by-reason": ("Figures per reason code",
                      lambda conn, day, start, end, flt: ops.disputes_by_reason(conn, start, end, flt),
                      {"reason_code": "Reason", "open_count": "Open", "open_cents": "Open amount",
                       "opened_count": "Opened", "resolved_count": "Resolved",
                       "median_days_to_resolve": "Median days", "within_target_pct": "In time %"}),
        "over-target": ("Disputes that missed the 30-day target",
                        lambda conn, day, start, end, flt: ops.disputes_over_target(conn, start, end, flt),
                        {"dispute_id": "Dispute", "customer_id": "Customer", "invoice_id": "Document",
                         "reason_code": "Reason", "opened_date": "Opened", "resolved_date": "Resolved",
                         "days": "Days", "amount_cents": "Amount"}),
    }


def _configure_disputes(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics disputes`` (:func:`analytics.kpis.operations.dispute_stats`,
    ``open_disputes``, ``disputes_by_reason``, ``disputes_over_target``)."""
    _configure_period_report(parser, _dispute_tables(), _run_disputes)


def _run_disputes(args: argparse.Namespace) -> int:
    """Print the dispute figures for the period and the chosen list."""
    from analytics.kpis import operations as ops

    return _run_period_report(args, "Disputes", ops.dispute_stats, [
        ("open_count", "Open at period end"), ("open", "Open amount"), ("opened_count", "Opened in period"),
        ("resolved_count", "Resolved in period"), ("median_days_to_resolve", "Median days to resolve"),
        ("avg_days_to_resolve", "Average days to resolve"), ("within_target_pct", "Resolved within target %")],
        _dispute_tables())


_PROMISE_HEADERS = {"promise_id": "Promise", "customer_id": "Customer", "customer_name": "Name",
                    "invoice_id": "Document", "made_on": "Made", "promised_date": "Promised", "amount_cents": "Amount",
                    "collected_cents": "Collected", "status": "Status", "days_past_promise": "Days past"}


def _promise_tables() -> dict:
    from analytics.kpis import operations as ops

    return {
        "due": ("Promises due or broken at the as-of date",
                lambda conn, day, start, end, flt: ops.promises_due(conn, day, flt), _PROMISE_HEADERS),
        "made": ("Every promise made in the period",
                 lambda conn, day, start, end, flt: ops.promises_detail(conn, start, end, flt), _PROMISE_HEADERS),
    }


def _configure_promises(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics promises`` (:func:`analytics.kpis.operations.promise_stats`,
    ``promises_due``, ``promises_detail``)."""
    _configure_period_report(parser, _promise_tables(), _run_promises)


def _run_promises(args: argparse.Namespace) -> int:
    """Print the promise-to-pay figures for the period and the chosen list."""
    from analytics.kpis import operations as ops

    return _run_period_report(args, "Promises to pay", ops.promise_stats, [
        ("made_count", "Promises made"), ("promised", "Promised"), ("kept_count", "Kept"),
        ("broken_count", "Broken"), ("pending_count", "Pending"), ("kept_pct", "Kept rate %"),
        ("collected", "Collected on promises")], _promise_tables())


# ================================================================================================
# dunning
# ================================================================================================
def _configure_dunning(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics dunning`` (the Dunning page: :func:`analytics.dunning.dunning_candidates`,
    :func:`~analytics.dunning.draft_letter`, :func:`~analytics.dunning.draft_letters`). Nothing is sent or recorded."""
    cs.add_filter_arguments(parser)
    parser.add_argument("--step", action="append", default=None, metavar="STEP",
                        help="only accounts at this step (reminder, second notice, call, escalation, hold, "
                             "collection agency; repeatable)")
    parser.add_argument("--bucket", action="append", default=None, metavar="LABEL",
                        help="only accounts whose worst item is in this aging bucket (repeatable)")
    parser.add_argument("--letter", default=None, metavar="CUSTOMER",
                        help="print this account's letter draft instead of the list")
    parser.add_argument("--zip", default=None, metavar="FILE",
                        help="also write the listed accounts' letters as one zip (with index.csv)")
    parser.add_argument("--format", choices=("text", "html"), default="text", help="letter format (default text)")
    parser.add_argument("--limit", type=cs.positive_int, default=50, help="rows printed for people (default 50)")
    cs.add_output_arguments(parser)
    parser.set_defaults(run=_run_dunning)
    from analytics import dunning_runs  # `dunning run|procedure|retry`: the day's run, which records and sends

    dunning_runs.add_run_subcommands(parser)


def _run_dunning(args: argparse.Namespace) -> int:
    """Print the accounts due a dunning step (or one letter), optionally writing the letters' zip."""
    import sys

    from analytics import dunning
    from analytics.errors import UserError
    from analytics.kpis import DEFAULT_BUCKETS

    flt = cs.ledger_filter(args)
    labels = [b.label for b in DEFAULT_BUCKETS]
    for bucket in args.bucket or ():
        if bucket not in labels:
            raise UserError(f"--bucket {bucket!r}: not an aging bucket (one of {', '.join(labels)})")

    def compute(conn):
        cs.check_filter(conn, flt)
        day = cs.as_of(conn, args)
        if args.letter:
            return day, dunning.draft_letter(conn, args.letter, day, fmt=args.format), None
        cands = dunning.dunning_candidates(conn, day, flt, args.step)
        if args.bucket:
            cands = cands[cands["bucket"].isin(args.bucket)].reset_index(drop=True)
        archive = dunning.draft_letters(conn, list(cands["customer_id"]), day, fmt=args.format) if args.zip else None
        return day, cands, archive

    day, result, archive = cs.run_on_ledger(args, compute)
    if args.letter:
        sys.stdout.write(result.rstrip("\n") + "\n")
        return 0
    if archive is not None:
        try:
            Path(args.zip).write_bytes(archive)
        except OSError as exc:
            raise UserError(f"--zip {args.zip}: cannot write ({exc.strerror})") from None
        print(f"wrote {args.zip} ({len(result):,} letters)", file=sys.stderr)
    sums = result.groupby("currency").agg(accounts=("customer_id", "count"), overdue_cents=("overdue_cents", "sum"),
                                          disputed_cents=("disputed_cents", "sum")).reset_index()
    payload = {"as_of": day.isoformat(), "accounts": cs.records(result), "totals": cs.records(sums)}
    headers = {"customer_id": "Customer", "customer_name": "Name", "step": "Step", "max_days_past_due": "Worst DPD",
               "bucket": "Bucket", "overdue_items": "Items", "overdue_cents": "Overdue",
               "disputed_cents": "Disputed", "collector_id": "Collector"}

    def text() -> str:
        totals = "; ".join(f"{t.accounts:,} accounts, {cs.money(t.overdue_cents, t.currency)} overdue not in dispute"
                           for t in sums.itertuples()) or "no account due a letter"
        return (f"Dunning as of {day.isoformat()}: {totals}\n\n" + cs.text_table(result, headers, limit=args.limit))

    return cs.emit(args, payload, result, text)


#: command -> the function that adds its arguments to its parser and sets ``run`` (read by :mod:`analytics.cli`).
CLI_COMMANDS = {name: globals()[f"_configure_{name}"] for name in
                ("kpis", "aging", "sla", "collectors", "disputes", "promises", "dunning")}
