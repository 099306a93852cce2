"""The metric catalogue: what each headline figure is called, its unit, which way is good, its definition
and where it is computed. It *describes*; the SQL stays in the Python functions named in ``source``.

The catalogue feeds the Overview cards' help text, the SLA labels and the ``kpis`` command's table, and
``tests/test_consistency.py`` keeps ``docs/kpi_definitions.md`` (section "Metric catalogue") and the keys of
``python -m analytics kpis --json`` in step with it.

Example
-------
>>> get("dso_standard").label
'DSO (standard)'
>>> get("sla.ptp_kept").higher_is_better
True
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Metric:
    """One catalogued figure.

    Parameters
    ----------
    key : str
        The key: for the snapshot, exactly the ``kpis --json`` key; SLA metrics are ``sla.<metric>``.
    label : str
        What a page or table calls it.
    unit : str
        ``money``, ``days``, ``pct``, ``count`` or ``money by bucket``.
    higher_is_better : bool or None
        None when neither direction is better (e.g. credit sales).
    definition : str
        One or two sentences; the full rule is in ``docs/kpi_definitions.md``.
    source : str
        ``module.function`` that computes it.

    Example
    -------
    >>> Metric("x", "X", "count", None, "an example", "analytics.metrics").unit
    'count'
    """

    key: str
    label: str
    unit: str
    higher_is_better: bool | None
    definition: str
    source: str


_SNAP = "analytics.kpis.ar.snapshot"

CATALOGUE: tuple[Metric, ...] = (
    # --- the core KPI set (python -m analytics kpis --json) ---------------------------------------
    Metric("ar_total", "Total AR", "money", False,
           "Open amount of every item at the as-of date (invoices and debit memos less open credit memos).", _SNAP),
    Metric("current_total", "Current", "money", None,
           "Open amount not yet past its due date (days past due <= 0).", _SNAP),
    Metric("overdue_total", "Overdue", "money", False, "Open amount past its due date (AR - current).", _SNAP),
    Metric("over_90_total", "Over 90 days", "money", False, "Open amount more than 90 days past due.", _SNAP),
    Metric("pct_current", "% current", "pct", True, "Current (not yet due) AR / total AR x 100.", _SNAP),
    Metric("credit_sales", "Credit sales (window)", "money", None,
           "Invoices and debit memos (gross, credit memos not netted) dated in the last N days.",
           "analytics.ledger.credit_sales"),
    Metric("dso_standard", "DSO (standard)", "days", False,
           "Days sales outstanding = AR / credit sales of the last N days x N.", _SNAP),
    Metric("dso_countback", "DSO (countback)", "days", False,
           "Days of the most recent credit sales, month by month backwards, that add up to today's AR.",
           "analytics.kpis.ar.countback_dso"),
    Metric("bpdso", "Best possible DSO", "days", False,
           "Current AR / credit sales of the last N days x N: the DSO if nothing were overdue.", _SNAP),
    Metric("add", "Average days delinquent", "days", False, "DSO - best possible DSO.", _SNAP),
    Metric("cei_month", "CEI (month to date)", "pct", True,
           "Collection Effectiveness Index for the as-of month up to the as-of date; 100% = everything "
           "collectable was collected.", "analytics.kpis.ar.cei"),
    Metric("aging", "Aging", "money by bucket", None,
           "Open amount by days past due: Current, 1-30, 31-60, 61-90, 91-120, 120+.", "analytics.kpis.ar.aging"),
    Metric("open_items", "Open items", "count", None, "Items with a non-zero open amount at the as-of date.", _SNAP),
    Metric("customers_with_balance", "Customers with balance", "count", None,
           "Customers whose net open amount at the as-of date is non-zero.",
           "analytics.kpis.ar.customers_with_balance"),
    Metric("unapplied_cash", "Unapplied cash", "money", False,
           "Receipts dated on or before the as-of date minus their applications dated on or before it.",
           "analytics.kpis.ar.unapplied_cash"),
    # --- SLA metrics (analytics.kpis.sla) -----------------------------------------------------------
    Metric("sla.dso", "DSO (days)", "days", False, "Standard DSO at the as-of date, window 90 days.",
           "analytics.kpis.sla.sla_status"),
    Metric("sla.cei", "Collection effectiveness (CEI %)", "pct", True,
           "CEI for the evaluation period (the as-of month to date).", "analytics.kpis.ar.cei"),
    Metric("sla.disputes_resolved_in_time", "Disputes resolved in time (%)", "pct", True,
           "Disputes resolved within 30 days / (resolved + still open past 30 days) in the period.",
           "analytics.kpis.disputes.dispute_stats"),
    Metric("sla.past_due_contacted", "Past-due accounts contacted (%)", "pct", True,
           "Accounts more than 30 days past due contacted (call, email, letter, portal or escalation; not a "
           "note) in the last 7 days.", "analytics.kpis.collectors.contact_coverage"),
    Metric("sla.ptp_kept", "Promises kept (%)", "pct", True,
           "Kept / (kept + broken) for promises made in the period: cash applied to the promised invoice or "
           "customer from the day made to the promised date + 3 days covers the amount.",
           "analytics.kpis.promises.promise_stats"),
)

_BY_KEY = {m.key: m for m in CATALOGUE}

#: Keys of ``python -m analytics kpis --json`` that describe the run, not a metric.
CONTEXT_KEYS: tuple[str, ...] = ("as_of", "currency", "window")


def get(key: str) -> Metric:
    """The catalogued metric ``key`` (KeyError naming it when unknown).

    Example
    -------
    >>> get("add").unit
    'days'
    """
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"no metric {key!r} in the catalogue") from None


def snapshot_keys() -> tuple[str, ...]:
    """The metric keys of the core KPI set, in the order of ``kpis --json`` (context keys excluded).

    Example
    -------
    >>> snapshot_keys()[:2]
    ('ar_total', 'current_total')
    """
    return tuple(m.key for m in CATALOGUE if not m.key.startswith("sla."))


def help_text(key: str) -> str:
    """The help a page shows for ``key``: its definition and where it is computed.

    Example
    -------
    >>> help_text("add")
    'DSO - best possible DSO. (analytics.kpis.ar.snapshot)'
    """
    m = get(key)
    return f"{m.definition} ({m.source})"
