"""Service-level targets for collections: status as of a date, and the accounts behind each breach.

Five targets, each checked on the ledger as of a date D (one currency, as in :mod:`analytics.kpis.ar`):

=============================  =====================================================  ==============
metric                         actual                                                 default target
=============================  =====================================================  ==============
``dso``                        standard DSO at D, window N = 90 days                  <= 45 days
                               (:func:`analytics.kpis.ar.kpi_trend`)
``cei``                        CEI for the evaluation period, percent                 >= 80 %
                               (:func:`analytics.kpis.ar.cei`)
``disputes_resolved_in_time``  % of disputes resolved within 30 days                  >= 90 %
                               (:func:`~analytics.kpis.operations.dispute_stats`)
``past_due_contacted``         % of accounts with a balance over 30 days past due     >= 100 %
                               contacted in the last 7 days
                               (:func:`~analytics.kpis.operations.contact_coverage`)
``ptp_kept``                   promise-to-pay kept rate, percent                      >= 80 %
                               (:func:`~analytics.kpis.operations.promise_stats`)
=============================  =====================================================  ==============

The **evaluation period** of the period metrics (CEI, disputes, promises) is D's calendar month up to D
(the same as ``cei_month`` in :func:`analytics.kpis.ar.snapshot`), or the last ``period_days`` days
when that is set. A metric is ``met`` or ``breached`` by comparing the exact actual with the target;
``not defined`` when it has no value (no disputes, no promises, no sales...) or its target is None.

Targets come from :class:`SlaTargets`, built in code, from a dict or from a TOML file::

    # sla.toml (keys at top level or under [sla]; false = no target)
    dso_max = 50
    cei_min = 75
    ptp_kept_min = false
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
import tomllib
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import sqlalchemy as sa

from analytics import schema
from analytics.errors import UserError
from analytics import metrics
from analytics.kpis import ar
from analytics.kpis import operations as ops
from analytics.kpis.common import isum, pct, sum_if
from analytics.ledger import (NO_FILTER, LedgerFilter, credit_sales, open_items, open_items_over, resolve_currency,
                              to_units)

inv = schema.invoices
cust = schema.customers

METRICS: tuple[str, ...] = ("dso", "cei", "disputes_resolved_in_time", "past_due_contacted", "ptp_kept")
#: Labels of the SLA metrics, from the metric catalogue (:mod:`analytics.metrics`, keys ``sla.<metric>``).
LABELS: dict[str, str] = {m: metrics.get(f"sla.{m}").label for m in METRICS}


def definition(metric: str) -> str:
    """What an SLA metric measures and where it is computed, from the metric catalogue (for help texts).

    Example
    -------
    >>> definition("ptp_kept").startswith("Kept / (kept + broken)")
    True
    """
    return metrics.help_text(f"sla.{metric}")
STATUSES = ("met", "breached", "not defined")
BREACH_COLUMNS = ("customer_id", "customer_name", "collector_id", "amount_cents", "days", "detail")

_TARGET_FIELDS = ("dso_max", "cei_min", "dispute_share_min", "contact_share_min", "ptp_kept_min")
_DAY_FIELDS = ("dso_window", "dispute_days", "contact_dpd_over", "contact_within_days", "grace_days")


@dataclasses.dataclass(frozen=True)
class SlaTargets:
    """Collections SLA targets (percentages are 0–100). A target of None means "no target".

    Parameters
    ----------
    dso_max : float or None, default 45
        Standard DSO (days) must be <= this.
    dso_window : int, default 90
        DSO window N in days.
    cei_min : float or None, default 80
        CEI (%) for the evaluation period must be >= this.
    dispute_days : int, default 30
        A dispute is resolved in time when resolved within this many days.
    dispute_share_min : float or None, default 90
        % of disputes resolved in time must be >= this.
    contact_dpd_over : int, default 30
        Accounts with a balance more than this many days past due (the 31+ bucket) ...
    contact_within_days : int, default 7
        ... must have been contacted within this many days (D − 6 .. D for 7) ...
    contact_share_min : float or None, default 100
        ... for at least this % of them (100: every account).
    ptp_kept_min : float or None, default 80
        Promise kept rate (%) must be >= this.
    grace_days : int, default 3
        Promise grace days.
    period_days : int or None, default None
        Evaluation period of CEI, disputes and promises: None = D's month to date, else the last N days.

    Example
    -------
    >>> SlaTargets.from_dict({"dso_max": 50}).dso_max
    50.0
    """

    dso_max: float | None = 45.0
    dso_window: int = ar.DEFAULT_WINDOW
    cei_min: float | None = 80.0
    dispute_days: int = ops.DEFAULT_DISPUTE_TARGET_DAYS
    dispute_share_min: float | None = 90.0
    contact_dpd_over: int = 30
    contact_within_days: int = 7
    contact_share_min: float | None = 100.0
    ptp_kept_min: float | None = 80.0
    grace_days: int = ops.DEFAULT_GRACE_DAYS
    period_days: int | None = None

    def __post_init__(self) -> None:
        for name in _TARGET_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UserError(f"SLA target {name!r} must be a number (or none), got {value!r}")
            if value < 0 or (name != "dso_max" and value > 100):
                raise UserError(f"SLA target {name!r} out of range: {value!r}"
                                + ("" if name == "dso_max" else " (a percentage, 0-100)"))
            object.__setattr__(self, name, float(value))
        for name in _DAY_FIELDS + ("period_days",):
            value = getattr(self, name)
            if value is None and name == "period_days":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UserError(f"SLA setting {name!r} must be a whole number of days >= 0, got {value!r}")
        for name in ("dso_window", "contact_within_days", "period_days"):
            if getattr(self, name) == 0:
                raise UserError(f"SLA setting {name!r} must be at least 1 day")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SlaTargets":
        """Targets from a mapping; missing keys keep their defaults, ``False`` or None disables a target.

        Raises
        ------
        UserError
            On an unknown key or a value of the wrong type.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"unknown SLA setting(s) {', '.join(map(repr, unknown))}; "
                            f"known: {', '.join(sorted(known))}")
        clean = {}
        for key, value in values.items():
            if value is False and key in _TARGET_FIELDS + ("period_days",):
                value = None
            clean[key] = value
        return cls(**clean)

    @classmethod
    def from_toml(cls, path: str | Path) -> "SlaTargets":
        """Targets from a TOML file: keys at top level or under an ``[sla]`` table.

        Example
        -------
        >>> SlaTargets.from_toml("sla.toml")  # doctest: +SKIP
        """
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"SLA file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{path}: not valid TOML: {exc}") from None
        if isinstance(data.get("sla"), dict):
            data = data["sla"]
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """The targets as a plain dict (the inverse of :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    def period(self, as_of: dt.date) -> tuple[dt.date, dt.date]:
        """Evaluation period for ``as_of``: month to date, or the last ``period_days`` days."""
        if self.period_days is None:
            return as_of.replace(day=1), as_of
        return as_of - dt.timedelta(days=self.period_days - 1), as_of


DEFAULT_TARGETS = SlaTargets()


def _status(actual: float | None, target: float | None, higher_is_better: bool) -> str:
    if target is None or actual is None or (isinstance(actual, float) and math.isnan(actual)):
        return "not defined"
    ok = actual >= target if higher_is_better else actual <= target
    return "met" if ok else "breached"


def _num(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _money(cents: int, currency: str) -> str:
    return f"{to_units(cents):,.2f} {currency}"


def _fmt(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{ar.round_half_up(Fraction(value), 1):g}{unit}"


def sla_status(conn: sa.Connection, as_of: dt.date, flt: LedgerFilter = NO_FILTER,
               targets: SlaTargets = DEFAULT_TARGETS) -> pd.DataFrame:
    """Each SLA metric's target, actual value and status as of ``as_of``.

    See the module docstring for the five metrics, their formulas and sources. ``actual`` is exact
    (not rounded); ``detail`` explains the figure in words.

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    as_of : datetime.date
    flt : LedgerFilter, optional
    targets : SlaTargets, optional

    Returns
    -------
    pandas.DataFrame
        ``metric, target, actual, status, detail`` — one row per metric in :data:`METRICS` order;
        ``target``/``actual`` float64 (NaN when none), ``status`` one of ``met``, ``breached``,
        ``not defined``. ``attrs``: currency, period_start, period_end.

    Example
    -------
    >>> sla_status(conn, dt.date(2024, 3, 31))[["metric", "status"]]  # doctest: +SKIP
                          metric    status
    0                        dso  breached
    1                        cei  breached
    2  disputes_resolved_in_time       met
    3         past_due_contacted  breached
    4                   ptp_kept       met
    """
    flt, currency = resolve_currency(conn, flt or NO_FILTER)
    return sla_frame(sla_parts(conn, as_of, flt, targets), as_of, currency, targets)


def sla_parts(conn: sa.Connection, as_of: dt.date, flt: LedgerFilter,
              targets: SlaTargets = DEFAULT_TARGETS) -> dict[str, int]:
    """The whole-number parts every SLA metric is computed from, in one currency (``flt`` names one).

    Money parts end in ``_cents`` (so a reporting currency converts exactly those,
    :func:`analytics.fx.sla_status`); the others are counts.

    * ``dso_ar_cents``, ``dso_sales_cents``: AR at D and credit sales of the DSO window;
    * ``cei_begin_cents``, ``cei_sales_cents``, ``cei_end_cents``, ``cei_current_cents``: AR the day
      before the evaluation period, its credit sales, AR and current AR at its end (:func:`ar.cei`'s parts);
    * ``disputes_resolved``, ``disputes_in_time``, ``disputes_open_over``: disputes resolved in the period,
      of those within ``dispute_days``, and still open after more than ``dispute_days``;
    * ``accounts_past_due``, ``accounts_contacted``: accounts over ``contact_dpd_over`` days past due,
      and of those contacted in the last ``contact_within_days`` days;
    * ``promises_made``, ``promises_kept``, ``promises_broken``, ``promises_pending``.

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    as_of : datetime.date
    flt : LedgerFilter
        Naming one currency (:func:`analytics.ledger.resolve_currency`).
    targets : SlaTargets, optional

    Returns
    -------
    dict

    Example
    -------
    >>> sla_parts(conn, dt.date(2024, 3, 31), LedgerFilter(currencies=("USD",)))["promises_made"]  # doctest: +SKIP
    4
    """
    t = targets
    start, end = t.period(as_of)
    k = ar.kpi_trend(conn, [as_of], flt, window=t.dso_window).iloc[0]
    begin = start - dt.timedelta(days=1)
    c = ar.kpi_trend(conn, [begin, end], flt, window=(end - begin).days).set_index("as_of")
    d = ops.dispute_stats(conn, start, end, flt, target_days=t.dispute_days).iloc[0]
    cc = ops.contact_coverage(conn, as_of, flt, dpd_over=t.contact_dpd_over, within_days=t.contact_within_days)
    p = ops.promise_stats(conn, start, end, flt, grace_days=t.grace_days).iloc[0]
    return {
        "dso_ar_cents": int(k["ar_cents"]), "dso_sales_cents": int(k["sales_cents"]),
        "cei_begin_cents": int(c.loc[begin, "ar_cents"]), "cei_sales_cents": int(c.loc[end, "sales_cents"]),
        "cei_end_cents": int(c.loc[end, "ar_cents"]), "cei_current_cents": int(c.loc[end, "current_cents"]),
        "disputes_resolved": int(d["resolved_count"]), "disputes_in_time": int(d["resolved_within_target"]),
        "disputes_open_over": int(d["open_over_target"]),
        "accounts_past_due": len(cc), "accounts_contacted": int(cc["contacted"].sum()),
        "promises_made": int(p["made_count"]), "promises_kept": int(p["kept_count"]),
        "promises_broken": int(p["broken_count"]), "promises_pending": int(p["pending_count"]),
    }


def sla_frame(parts: Mapping[str, int], as_of: dt.date, currency: str,
              targets: SlaTargets = DEFAULT_TARGETS) -> pd.DataFrame:
    """The SLA status table from :func:`sla_parts` (of one currency, or added up in a reporting currency).

    DSO = dso_ar / dso_sales × N; CEI = :func:`analytics.kpis.ar.cei_fraction` of its four parts; the
    shares are 100 × in time / (resolved + open over target), 100 × contacted / past due and
    100 × kept / (kept + broken). Columns as :func:`sla_status`.

    Parameters
    ----------
    parts : mapping
        :func:`sla_parts` (money in ``currency``).
    as_of : datetime.date
    currency : str
    targets : SlaTargets, optional

    Returns
    -------
    pandas.DataFrame
        ``metric, target, actual, status, detail``; ``attrs``: currency, period_start, period_end.

    Example
    -------
    >>> sla_frame(sla_parts(conn, d, flt), d, "USD")  # doctest: +SKIP
    """
    t, q = targets, parts
    start, end = t.period(as_of)
    period = f"{start.isoformat()}..{end.isoformat()}"
    rows = []

    sales = q["dso_sales_cents"]
    dso = None if sales == 0 else float(Fraction(q["dso_ar_cents"] * t.dso_window, sales))
    rows.append(("dso", t.dso_max, dso, _status(dso, t.dso_max, False),
                 f"AR {_money(q['dso_ar_cents'], currency)} / credit sales of the last {t.dso_window} days "
                 f"{_money(sales, currency)} x {t.dso_window}"
                 + ("" if dso is not None else " (no credit sales in the window)")))

    cei = ar.cei_fraction(q["cei_begin_cents"], q["cei_sales_cents"], q["cei_end_cents"], q["cei_current_cents"])
    cei = None if cei is None else float(cei)
    rows.append(("cei", t.cei_min, cei, _status(cei, t.cei_min, True),
                 f"CEI for {period}" + ("" if cei is not None else " (nothing collectable)")))

    share = _num(pct(q["disputes_in_time"], q["disputes_resolved"] + q["disputes_open_over"]))
    rows.append(("disputes_resolved_in_time", t.dispute_share_min, share, _status(share, t.dispute_share_min, True),
                 f"{q['disputes_in_time']} of {q['disputes_resolved']} disputes resolved in {period} "
                 f"took <= {t.dispute_days} days; {q['disputes_open_over']} still open after more than "
                 f"{t.dispute_days} days"))

    n, hit = q["accounts_past_due"], q["accounts_contacted"]
    cov = _num(pct(hit, n))
    rows.append(("past_due_contacted", t.contact_share_min, cov, _status(cov, t.contact_share_min, True),
                 f"{hit} of {n} accounts more than {t.contact_dpd_over} days past due contacted in the last "
                 f"{t.contact_within_days} days"))

    kept = _num(pct(q["promises_kept"], q["promises_kept"] + q["promises_broken"]))
    rows.append(("ptp_kept", t.ptp_kept_min, kept, _status(kept, t.ptp_kept_min, True),
                 f"{q['promises_kept']} kept, {q['promises_broken']} broken, {q['promises_pending']} pending "
                 f"of {q['promises_made']} promises made in {period} (grace {t.grace_days} days)"))

    df = pd.DataFrame(rows, columns=["metric", "target", "actual", "status", "detail"])
    df = df.astype({"metric": "str", "target": "float64", "actual": "float64", "status": "str", "detail": "str"})
    df.attrs.update(currency=currency, period_start=start, period_end=end)
    return df


def _breach_frame(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(BREACH_COLUMNS))
    df = df.astype({"customer_id": "str", "customer_name": "str", "collector_id": "str", "amount_cents": "int64",
                    "detail": "str"})
    df["days"] = df["days"].astype("Int64")
    return df


def _dso_accounts(conn, as_of: dt.date, flt: LedgerFilter, t: SlaTargets, currency: str) -> pd.DataFrame:
    """Accounts whose own standard DSO (AR_i / S_i × N) exceeds the target, or with AR and no sales."""
    oi = open_items(as_of, flt)
    bal = sa.select(oi.c.customer_id, isum(oi.c.open_cents).label("ar")).group_by(oi.c.customer_id) \
        .subquery("bal")
    lo = as_of - dt.timedelta(days=t.dso_window)
    sales = credit_sales(lo + dt.timedelta(days=1), as_of, flt, by=(inv.c.customer_id,)).subquery("sales")
    stmt = (sa.select(bal.c.customer_id, cust.c.name, cust.c.collector_id, bal.c.ar,
                      sa.func.coalesce(sales.c.sales_cents, 0).label("sales"))
            .select_from(bal.join(cust, cust.c.id == bal.c.customer_id)
                         .outerjoin(sales, sales.c.customer_id == bal.c.customer_id))
            .where(bal.c.ar > 0))
    rows = []
    for r in conn.execute(stmt):
        ar_c, s = int(r.ar), int(r.sales)
        if s > 0:
            dso = Fraction(ar_c * t.dso_window, s)
            if dso <= Fraction(t.dso_max):
                continue
            days = int(ar.round_half_up(dso, 0))
            detail = f"own DSO {_fmt(float(dso))} days: AR {_money(ar_c, currency)}, sales {_money(s, currency)}"
        else:
            days, detail = None, f"AR {_money(ar_c, currency)} and no credit sales in the last {t.dso_window} days"
        rows.append((r.customer_id, r.name, r.collector_id, ar_c, days, detail))
    rows.sort(key=lambda x: (-x[3], x[0]))
    return _breach_frame(rows)


def _cei_accounts(conn, start: dt.date, end: dt.date, flt: LedgerFilter, t: SlaTargets, currency: str):
    """Accounts whose own CEI for the period is below the target (amount = overdue at the end)."""
    begin = start - dt.timedelta(days=1)
    o = open_items_over([begin, end], flt)
    e = sa.literal(end, sa.Date)
    bal = (sa.select(o.c.customer_id,
                     sum_if(o.c.as_of == sa.literal(begin, sa.Date), o.c.open_cents).label("b"),
                     sum_if(o.c.as_of == e, o.c.open_cents).label("e"),
                     sum_if(sa.and_(o.c.as_of == e, o.c.days_past_due <= 0), o.c.open_cents).label("c"),
                     sa.func.max(sa.case((sa.and_(o.c.as_of == e, o.c.days_past_due > 0), o.c.days_past_due)))
                     .label("dpd"))
           .group_by(o.c.customer_id).subquery("bal"))
    sales = credit_sales(start, end, flt, by=(inv.c.customer_id,)).subquery("sales")
    ids = sa.union(sa.select(bal.c.customer_id), sa.select(sales.c.customer_id)).subquery("ids")
    stmt = (sa.select(ids.c.customer_id, cust.c.name, cust.c.collector_id, sa.func.coalesce(bal.c.b, 0),
                      sa.func.coalesce(sales.c.sales_cents, 0), sa.func.coalesce(bal.c.e, 0),
                      sa.func.coalesce(bal.c.c, 0),
                      bal.c.dpd)
            .select_from(ids.join(cust, cust.c.id == ids.c.customer_id)
                         .outerjoin(bal, bal.c.customer_id == ids.c.customer_id)
                         .outerjoin(sales, sales.c.customer_id == ids.c.customer_id)))
    rows = []
    for cid, name, col, b, s, e_, c, dpd in conn.execute(stmt):
        b, s, e_, c = int(b), int(s), int(e_), int(c)
        value = ar.cei_fraction(b, s, e_, c)
        if value is None or value >= Fraction(t.cei_min):
            continue
        rows.append((cid, name, col, e_ - c, None if dpd is None else int(dpd),
                     f"own CEI {_fmt(float(value), ' %')}: {_money(e_ - c, currency)} of "
                     f"{_money(b + s - c, currency)} collectable still overdue"))
    rows.sort(key=lambda x: (-x[3], x[0]))
    return _breach_frame(rows)


def sla_breaches(conn: sa.Connection, as_of: dt.date, flt: LedgerFilter = NO_FILTER,
                 targets: SlaTargets = DEFAULT_TARGETS, status: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """The accounts behind each breached SLA metric as of ``as_of``.

    For every metric of :data:`METRICS` a DataFrame with columns ``customer_id, customer_name,
    collector_id, amount_cents, days, detail`` (largest amount first); empty when the metric is met or
    not defined. What the rows are, per metric:

    * ``dso``: accounts whose own standard DSO, AR_i / S_i × N, exceeds the target (``days`` = that DSO,
      rounded half-up), and accounts with a balance but no credit sales in the window (``days``
      missing); ``amount_cents`` = the account's AR.
    * ``cei``: accounts whose own CEI for the period is below the target; ``amount_cents`` = what is
      still overdue at the end (= collectable − collected), ``days`` = their oldest days past due.
    * ``disputes_resolved_in_time``: one row per dispute that missed the target
      (:func:`~analytics.kpis.operations.disputes_over_target`): ``amount_cents`` = disputed amount,
      ``days`` = days to resolve, or age while open.
    * ``past_due_contacted``: accounts over ``contact_dpd_over`` days past due not contacted in the
      last ``contact_within_days`` days; ``amount_cents`` = their balance over that age, ``days`` =
      oldest days past due.
    * ``ptp_kept``: broken promises made in the period; ``amount_cents`` = promised amount not received
      in time, ``days`` = days since the promised date.

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    as_of : datetime.date
    flt : LedgerFilter, optional
    targets : SlaTargets, optional
    status : pandas.DataFrame, optional
        The result of :func:`sla_status` for the same arguments, if already computed (saves its queries).

    Returns
    -------
    dict of str to pandas.DataFrame

    Example
    -------
    >>> sla_breaches(conn, dt.date(2024, 3, 31))["past_due_contacted"]["customer_id"].tolist()  # doctest: +SKIP
    ['K2']
    """
    flt, currency = resolve_currency(conn, flt or NO_FILTER)
    t = targets
    if status is None:
        status = sla_status(conn, as_of, flt, t)
    status = status.set_index("metric")["status"]
    start, end = t.period(as_of)
    out = {m: _breach_frame([]) for m in METRICS}
    if status["dso"] == "breached":
        out["dso"] = _dso_accounts(conn, as_of, flt, t, currency)
    if status["cei"] == "breached":
        out["cei"] = _cei_accounts(conn, start, end, flt, t, currency)
    if status["disputes_resolved_in_time"] == "breached":
        d = ops.disputes_over_target(conn, start, end, flt, target_days=t.dispute_days)
        out["disputes_resolved_in_time"] = _breach_frame([
            (r.customer_id, r.customer_name, _opt(r.collector_id), r.amount_cents, r.days,
             f"dispute {r.dispute_id} on {r.invoice_id} ({r.reason_code}) "
             + (f"resolved after {r.days} days" if pd.notna(r.resolved_date) else f"open for {r.days} days"))
            for r in d.itertuples()])
    if status["past_due_contacted"] == "breached":
        cc = ops.contact_coverage(conn, as_of, flt, dpd_over=t.contact_dpd_over, within_days=t.contact_within_days)
        cc = cc[~cc["contacted"]]
        due = (as_of - dt.timedelta(days=t.contact_within_days - 1)).isoformat()
        out["past_due_contacted"] = _breach_frame([
            (r.customer_id, r.customer_name, _opt(r.collector_id), r.past_due_cents, r.max_days_past_due,
             ("never contacted" if pd.isna(r.days_since_contact)
              else f"last contact {r.last_contact.date().isoformat()} ({r.days_since_contact} days ago)")
             + f"; needed on or after {due}")
            for r in cc.itertuples()])
    if status["ptp_kept"] == "breached":
        p = ops.promises_detail(conn, start, end, flt, grace_days=t.grace_days)
        p = p[p["status"] == "broken"].sort_values(["remaining_cents", "promise_id"], ascending=[False, True])
        out["ptp_kept"] = _breach_frame([
            (r.customer_id, r.customer_name, _opt(r.collector_id), r.remaining_cents, r.days_past_promise,
             f"promised {_money(r.amount_cents, currency)} by {r.promised_date.date().isoformat()}"
             + (f" on {r.invoice_id}" if pd.notna(r.invoice_id) else "")
             + f", {_money(max(r.collected_cents, 0), currency)} arrived in time")
            for r in p.itertuples()])
    for df in out.values():
        df.attrs.update(currency=currency, period_start=start, period_end=end)
    return out


def _opt(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
