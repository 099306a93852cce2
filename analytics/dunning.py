"""Dunning: which accounts are due for which reminder, and drafts of the letters.

The **dunning ladder** maps an account's worst days past due (over its overdue items that are
not in dispute) to a step:

==================  ==================  ==========================================================
days past due       step                meaning
==================  ==================  ==========================================================
<= 0                (none)              current: nothing to do
1 - 15              reminder            friendly reminder letter / e-mail
16 - 30             second notice       firmer letter with a 7-day deadline
31 - 60             call                the collector phones the customer
61 - 90             escalation          escalated to the credit manager
91 - 120            hold                account on credit hold (no new orders on credit)
121 and more        collection agency   final notice, then referral to an agency
==================  ==================  ==========================================================

The ladder is data (:data:`DUNNING_LADDER`); pass your own (:func:`make_ladder`) to change it.
Letters are Jinja2 templates in ``analytics/templates/dunning/<step>.{txt,html}.j2`` (HTML is
autoescaped); pass ``template_dir`` to use your own copies. Nothing is ever sent: the product
drafts letters for download, and records a ``letter`` activity only when asked (``record=True``).

Example
-------
>>> next_step(0) is None, next_step(15), next_step(16), next_step(121)
(True, 'reminder', 'second notice', 'collection agency')
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import io
import re
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

import jinja2
import pandas as pd
import sqlalchemy as sa

from analytics import schema
from analytics.errors import UserError
from analytics.exports import safe_csv
from analytics.ledger import (NO_FILTER, LedgerFilter, cents_to_decimal, money_text,  # noqa: F401 (re-exported)
                              open_disputes_at, open_items)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


@dataclasses.dataclass(frozen=True)
class DunningStep:
    """One rung of the ladder: applies from ``min_days`` past due up to the next rung."""

    name: str
    min_days: int
    description: str = ""
    credit_hold: bool = False

    @property
    def template(self) -> str:
        """Template base name, e.g. ``second_notice``."""
        return re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")


def make_ladder(steps: Iterable[DunningStep | tuple]) -> tuple[DunningStep, ...]:
    """A validated ladder from steps or ``(name, min_days[, description[, credit_hold]])`` tuples.

    Raises
    ------
    UserError
        Empty ladder, a first step below 1 day, or thresholds not strictly increasing.

    Example
    -------
    >>> [s.name for s in make_ladder([("reminder", 1), ("call", 20)])]
    ['reminder', 'call']
    """
    ladder = tuple(s if isinstance(s, DunningStep) else DunningStep(*s) for s in steps)
    if not ladder:
        raise UserError("dunning ladder: needs at least one step")
    days = [s.min_days for s in ladder]
    if days[0] < 1 or any(b <= a for a, b in zip(days, days[1:])):
        raise UserError(f"dunning ladder: min_days must start at >= 1 and strictly increase, got {days}")
    return ladder


DUNNING_LADDER: tuple[DunningStep, ...] = make_ladder([
    DunningStep("reminder", 1, "friendly reminder"),
    DunningStep("second notice", 16, "firmer letter, 7-day deadline"),
    DunningStep("call", 31, "collector phones the customer"),
    DunningStep("escalation", 61, "escalated to the credit manager"),
    DunningStep("hold", 91, "account on credit hold", credit_hold=True),
    DunningStep("collection agency", 121, "final notice, then referral to a collection agency", credit_hold=True),
])
STEPS: tuple[str, ...] = tuple(s.name for s in DUNNING_LADDER)


def step_for(days_past_due, ladder: Sequence[DunningStep] = DUNNING_LADDER) -> DunningStep | None:
    """The :class:`DunningStep` for ``days_past_due`` (None when current or missing)."""
    if days_past_due is None or pd.isna(days_past_due):
        return None
    found = None
    for step in ladder:
        if days_past_due >= step.min_days:
            found = step
    return found


def next_step(days_past_due, ladder: Sequence[DunningStep] = DUNNING_LADDER) -> str | None:
    """Name of the dunning step for an account whose worst item is ``days_past_due`` late.

    Parameters
    ----------
    days_past_due : int or None
        Worst days past due of the account's overdue items (<= 0 or None: current).
    ladder : sequence of DunningStep, optional
        Default :data:`DUNNING_LADDER`.

    Returns
    -------
    str or None
        ``reminder``, ``second notice``, ``call``, ``escalation``, ``hold`` or ``collection agency``;
        None when the account is current.

    Example
    -------
    >>> [next_step(d) for d in (0, 1, 30, 31, 120, 121)]
    [None, 'reminder', 'second notice', 'call', 'hold', 'collection agency']
    """
    step = step_for(days_past_due, ladder)
    return step.name if step else None


def _step(name: str, ladder: Sequence[DunningStep]) -> DunningStep:
    for s in ladder:
        if s.name == name or s.template == name:
            return s
    raise UserError(f"step: unknown dunning step {name!r} (one of {', '.join(s.name for s in ladder)})")


# ------------------------------------------------------------------------------------------------
# Candidates
# ------------------------------------------------------------------------------------------------
def _disputed_ids(as_of: dt.date) -> sa.Select:
    return sa.select(open_disputes_at(as_of).subquery("open_disputes").c.invoice_id)


def dunning_candidates(conn: sa.Connection | sa.Engine, as_of: dt.date, flt: LedgerFilter = NO_FILTER,
                       steps: Iterable[str] | None = None,
                       ladder: Sequence[DunningStep] = DUNNING_LADDER) -> pd.DataFrame:
    """Accounts due for a dunning step at ``as_of``, worst first.

    Per customer and currency (aggregated in the database): the worst days past due over items
    that are overdue (days past due > 0), still owed (open > 0) and not in an open dispute at
    ``as_of``; that drives the step. Accounts with nothing overdue are left out.

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    as_of : datetime.date
    flt : LedgerFilter, optional
        Scope (use :func:`analytics.auth.scope_filter` for a collector).
    steps : iterable of str, optional
        Keep only accounts at these steps (e.g. ``["reminder", "second notice"]``).
    ladder : sequence of DunningStep, optional

    Returns
    -------
    pandas.DataFrame
        ``customer_id, customer_name, collector_id, collector_name, currency, max_days_past_due,
        bucket, step, credit_hold, open_items, overdue_items, open_cents, overdue_cents,
        disputed_cents``.

    Example
    -------
    >>> dunning_candidates(conn, dt.date(2024, 3, 31), steps=["hold"])  # doctest: +SKIP
    """
    if isinstance(conn, sa.Engine):
        with conn.connect() as c:
            return dunning_candidates(c, as_of, flt, steps, ladder)
    oi = open_items(as_of, flt)
    disputed = oi.c.invoice_id.in_(_disputed_ids(as_of))
    overdue = sa.and_(oi.c.days_past_due > 0, oi.c.open_cents > 0, sa.not_(disputed))
    agg = (
        sa.select(
            oi.c.customer_id, oi.c.currency,
            sa.func.count().label("open_items"),
            sa.func.sum(sa.case((overdue, 1), else_=0)).label("overdue_items"),
            sa.func.sum(oi.c.open_cents).label("open_cents"),
            sa.func.sum(sa.case((overdue, oi.c.open_cents), else_=0)).label("overdue_cents"),
            sa.func.sum(sa.case((disputed, oi.c.open_cents), else_=0)).label("disputed_cents"),
            sa.func.max(sa.case((overdue, oi.c.days_past_due), else_=None)).label("max_days_past_due"),
        )
        .group_by(oi.c.customer_id, oi.c.currency)
        .subquery("dun")
    )
    cust, col = schema.customers, schema.collectors
    stmt = (
        sa.select(agg.c.customer_id, cust.c.name.label("customer_name"), cust.c.collector_id,
                  col.c.name.label("collector_name"), agg.c.currency, agg.c.max_days_past_due, agg.c.open_items,
                  agg.c.overdue_items, agg.c.open_cents, agg.c.overdue_cents, agg.c.disputed_cents)
        .select_from(agg.join(cust, cust.c.id == agg.c.customer_id).outerjoin(col, col.c.id == cust.c.collector_id))
        .where(agg.c.max_days_past_due >= ladder[0].min_days)
        .order_by(agg.c.max_days_past_due.desc(), agg.c.overdue_cents.desc(), agg.c.customer_id, agg.c.currency)
    )
    rows = conn.execute(stmt).all()
    columns = ["customer_id", "customer_name", "collector_id", "collector_name", "currency", "max_days_past_due",
               "bucket", "step", "credit_hold", "open_items", "overdue_items", "open_cents", "overdue_cents",
               "disputed_cents"]
    frame = pd.DataFrame([dict(r._mapping) for r in rows],
                         columns=[c for c in columns if c not in ("bucket", "step", "credit_hold")])
    for c in ("max_days_past_due", "open_items", "overdue_items", "open_cents", "overdue_cents", "disputed_cents"):
        frame[c] = frame[c].astype("int64")
    for c in ("customer_id", "customer_name", "collector_id", "collector_name", "currency"):
        frame[c] = frame[c].astype(object)
    frame["bucket"] = pd.Series([_bucket_label(d) for d in frame["max_days_past_due"]], index=frame.index,
                                dtype=object)
    found = [step_for(d, ladder) for d in frame["max_days_past_due"]]
    frame["step"] = pd.Series([s.name for s in found], index=frame.index, dtype=object)
    frame["credit_hold"] = pd.Series([s.credit_hold for s in found], index=frame.index, dtype=bool)
    if steps is not None:
        wanted = {_step(s, ladder).name for s in steps}
        frame = frame[frame["step"].isin(wanted)]
    return frame[columns].reset_index(drop=True)


def _bucket_label(days: int) -> str:
    from analytics.kpis import DEFAULT_BUCKETS

    for b in DEFAULT_BUCKETS:
        if (b.min_days is None or days >= b.min_days) and (b.max_days is None or days <= b.max_days):
            return b.label
    return f"{days} days"


# ------------------------------------------------------------------------------------------------
# Letters
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Sender:
    """Who signs the letters."""

    name: str = "Accounts Receivable Team"
    department: str = "Credit & Collections"
    company: str = "Example Supplies Ltd"
    email: str = "ar@example.com"
    phone: str = ""
    address: str = ""


DEFAULT_SENDER = Sender()


def _environment(template_dir: str | Path | None) -> jinja2.Environment:
    return _cached_environment(str(template_dir or TEMPLATE_DIR))


@functools.lru_cache(maxsize=8)
def _cached_environment(template_dir: str) -> jinja2.Environment:
    # auto_reload (the default) still picks up edited templates; compiled ones are reused.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm", "html.j2"), default=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
    )


def letter_items(conn: sa.Connection, customer_id: str, as_of: dt.date) -> pd.DataFrame:
    """Open items of one customer at ``as_of`` as listed on a letter, oldest due first.

    Returns
    -------
    pandas.DataFrame
        ``invoice_id, doc_type, invoice_date, due_date, days_past_due, currency, open_cents, in_dispute``.
    """
    oi = open_items(as_of, LedgerFilter(customers=(customer_id,)))
    stmt = sa.select(oi.c.invoice_id, oi.c.doc_type, oi.c.invoice_date, oi.c.due_date, oi.c.days_past_due,
                     oi.c.currency, oi.c.open_cents,
                     sa.case((oi.c.invoice_id.in_(_disputed_ids(as_of)), True), else_=False).label("in_dispute")
                     ).order_by(oi.c.due_date, oi.c.invoice_id)
    rows = conn.execute(stmt).all()
    frame = pd.DataFrame([dict(r._mapping) for r in rows],
                         columns=["invoice_id", "doc_type", "invoice_date", "due_date", "days_past_due", "currency",
                                  "open_cents", "in_dispute"])
    for c in ("days_past_due", "open_cents"):
        frame[c] = frame[c].astype("int64")
    frame["in_dispute"] = frame["in_dispute"].astype(bool)
    return frame


def _letter_context(conn, customer_id, as_of, step, sender, ladder):
    cust = conn.execute(sa.select(schema.customers).where(schema.customers.c.id == customer_id)).first()
    if cust is None:
        raise UserError(f"customer_id: unknown customer {customer_id!r}")
    items = letter_items(conn, customer_id, as_of)
    if items.empty:
        raise UserError(f"customer {customer_id!r} has no open items at {as_of.isoformat()}: nothing to write")
    overdue = (items["days_past_due"] > 0) & (items["open_cents"] > 0) & ~items["in_dispute"]
    if step is None:
        worst = int(items.loc[overdue, "days_past_due"].max()) if overdue.any() else 0
        found = step_for(worst, ladder)
        if found is None:
            raise UserError(f"customer {customer_id!r} has nothing overdue at {as_of.isoformat()}; "
                            f"pass step= to draft a letter anyway")
    else:
        found = _step(step, ladder)
    totals = []
    for currency, group in items.groupby("currency", sort=True):
        over = int(group.loc[overdue[group.index], "open_cents"].sum())
        total = int(group["open_cents"].sum())
        totals.append({"currency": currency, "open_cents": total, "overdue_cents": over,
                       "open_text": money_text(total, currency), "overdue_text": money_text(over, currency),
                       "open_plain": money_text(total), "overdue_plain": money_text(over)})
    listed = [{
        "invoice_id": r.invoice_id, "doc_type": r.doc_type, "invoice_date": r.invoice_date.isoformat(),
        "due_date": r.due_date.isoformat(), "days_past_due": int(r.days_past_due), "currency": r.currency,
        "open_cents": int(r.open_cents), "open_text": money_text(r.open_cents),
        "in_dispute": bool(r.in_dispute),
    } for r in items.itertuples(index=False)]
    return found, {
        "customer": {"id": cust.id, "name": cust.name, "country": cust.country, "currency": cust.currency},
        "as_of": as_of, "as_of_text": as_of.strftime("%d %B %Y").lstrip("0"),
        "step": found.name, "credit_hold": found.credit_hold, "items": listed, "totals": totals,
        "overdue_text": " and ".join(t["overdue_text"] for t in totals if t["overdue_cents"]) or money_text(0),
        "sender": dataclasses.asdict(sender) if isinstance(sender, Sender) else dict(sender),
    }


def draft_letter(conn: sa.Connection | sa.Engine, customer_id: str, as_of: dt.date, step: str | None = None,
                 sender: Sender | dict = DEFAULT_SENDER, fmt: str = "text", *, record: bool = False, user=None,
                 ladder: Sequence[DunningStep] = DUNNING_LADDER, template_dir: str | Path | None = None) -> str:
    """Draft the dunning letter for one account (nothing is sent).

    Lists every open item at ``as_of`` (document, date, due date, days past due, open amount;
    items in dispute and credits marked) and the totals per currency: open, and overdue not in
    dispute (the amount asked for).

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    customer_id : str
    as_of : datetime.date
    step : str, optional
        Template to use; default the account's step on the ladder.
    sender : Sender or dict, optional
        Name, department, company, email, phone, address of the signer.
    fmt : {"text", "html"}
        Plain text, or HTML (autoescaped).
    record : bool, default False
        Also log a ``letter`` activity for the customer (needs ``user``).
    user : analytics.auth.User, optional
        When given, checked for ``draft_letters`` on the customer (collectors: own portfolio).
    ladder : sequence of DunningStep, optional
    template_dir : path, optional
        Directory holding ``dunning/<step>.<txt|html>.j2`` (default the bundled templates).

    Returns
    -------
    str
        The letter.

    Raises
    ------
    UserError
        Unknown customer, nothing open, nothing overdue and no ``step``, unknown step or format.

    Example
    -------
    >>> print(draft_letter(engine, "K1", dt.date(2024, 3, 31)))  # doctest: +SKIP
    """
    return _draft(conn, customer_id, as_of, step, sender, fmt, record, user, ladder, template_dir)[1]


def _draft(conn, customer_id, as_of, step, sender, fmt, record, user, ladder, template_dir):
    if fmt not in ("text", "html"):
        raise UserError(f"fmt: {fmt!r} must be 'text' or 'html'")
    if record:
        from analytics.db import require_writable

        require_writable(conn, "record letter activities")
    if record or user is not None:
        from analytics.auth import require

        require(user, "draft_letters", customer_id, conn)
    if isinstance(conn, sa.Engine):
        with conn.connect() as c:
            found, ctx = _letter_context(c, customer_id, as_of, step, sender, ladder)
        engine = conn
    else:
        found, ctx = _letter_context(conn, customer_id, as_of, step, sender, ladder)
        engine = conn.engine
    name = f"dunning/{found.template}.{'html' if fmt == 'html' else 'txt'}.j2"
    try:
        text = _environment(template_dir).get_template(name).render(**ctx)
    except jinja2.TemplateNotFound as exc:
        raise UserError(f"template: {exc.name} not found in {template_dir or TEMPLATE_DIR}") from exc
    if record:
        from analytics.workflow import log_activity

        log_activity(engine, user, customer_id, "letter", outcome=f"dunning: {found.name}"[:64],
                     note=f"{found.name} letter drafted as of {as_of.isoformat()}: {ctx['overdue_text']} overdue")
    return found, text


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "customer"


def draft_letters(conn: sa.Connection | sa.Engine, customer_ids: Iterable[str], as_of: dt.date,
                  sender: Sender | dict = DEFAULT_SENDER, fmt: str = "text", *, record: bool = False, user=None,
                  ladder: Sequence[DunningStep] = DUNNING_LADDER, template_dir: str | Path | None = None) -> bytes:
    """A zip of dunning letters, one file per account, for download (nothing is sent).

    Accounts with nothing overdue are skipped; ``index.csv`` in the zip lists every requested
    customer with its step, file name, or why it was skipped.

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    customer_ids : iterable of str
    as_of : datetime.date
    sender, fmt, record, user, ladder, template_dir
        As in :func:`draft_letter`.

    Returns
    -------
    bytes
        The zip archive (``<as_of>_<customer>_<step>.txt|html`` plus ``index.csv``).
    """
    if isinstance(conn, sa.Engine):
        with conn.connect() as c:
            return draft_letters(c, customer_ids, as_of, sender, fmt, record=record, user=user, ladder=ladder,
                                 template_dir=template_dir)
    buf = io.BytesIO()
    index = []
    ext = "html" if fmt == "html" else "txt"
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for cid in dict.fromkeys(customer_ids):
            try:
                found, text = _draft(conn, cid, as_of, None, sender, fmt, record, user, ladder, template_dir)
            except UserError as exc:
                index.append({"customer_id": cid, "step": "", "file": "", "skipped": str(exc)})
                continue
            step = found.name
            fname = f"{as_of.isoformat()}_{_safe(cid)}_{_safe(step.replace(' ', '_'))}.{ext}"
            zf.writestr(fname, text)
            index.append({"customer_id": cid, "step": step, "file": fname, "skipped": ""})
        # Ids and skip reasons come from the ledger: a "=1+1" there must stay text in a spreadsheet.
        zf.writestr("index.csv", safe_csv(pd.DataFrame(index, columns=["customer_id", "step", "file", "skipped"])))
    return buf.getvalue()
