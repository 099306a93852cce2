"""Dunning: the procedure, which accounts are due which letter, and drafts of the letters.

The **dunning procedure** is a TOML file the user can read and change: the bundled default
``analytics/templates/dunning/procedure.toml``, or the file named by ``AR_DUNNING_FILE``
(:func:`current_procedure`). It has levels (name, days past due from which an item reaches the
level, a minimum amount, credit hold), grace days, the interval between two letters to the same
account, a minimum amount per account, and whether disputed items are excluded.

For an account (customer and currency) at a date, an item **counts** when it is still owed, more
than ``grace_days`` past due, not in an open dispute and not blocked by hand
(:mod:`analytics.dunning_runs`). The account's **step** is the highest level whose counted items
at or above its days threshold total at least its minimum amount, provided all counted items
together reach ``min_account_amount``. The **letter** lists exactly the counted items at or above
its level and their total. Default levels:

==================  ============  ==========  ==========================================================
step                days past due minimum     meaning
==================  ============  ==========  ==========================================================
reminder            1             0.00        friendly reminder letter / e-mail
second notice       16            0.00        firmer letter with a 7-day deadline
call                31            50.00       the collector phones the customer
escalation          61            100.00      escalated to the credit manager
hold                91            250.00      account on credit hold (no new orders on credit)
collection agency   121           500.00      final notice, then referral to an agency
==================  ============  ==========  ==========================================================

Letters are Jinja2 templates in ``analytics/templates/dunning/<step>.{txt,html}.j2`` (HTML is
autoescaped); pass ``template_dir`` to use your own copies. Drafting sends nothing;
:mod:`analytics.dunning_runs` runs the procedure and records what went to whom.

Example
-------
>>> next_step(0) is None, next_step(15), next_step(16), next_step(121)
(True, 'reminder', 'second notice', 'collection agency')
>>> next_step([(125, 7_499), (3, 10_000)])   # 74.99 at 125 days is below the hold/agency minimums
'call'
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import io
import os
import re
import tomllib
import zipfile
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable

import jinja2
import numpy as np
import pandas as pd
import sqlalchemy as sa

from analytics import instalments, schema
from analytics.errors import UserError
from analytics.exports import safe_csv
from analytics.ledger import (NO_FILTER, LedgerFilter, money_text,  # noqa: F401 (re-exported)
                              open_disputes_at, open_items)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
DEFAULT_PROCEDURE_FILE = TEMPLATE_DIR / "dunning" / "procedure.toml"
PROCEDURE_ENV = "AR_DUNNING_FILE"


@dataclasses.dataclass(frozen=True)
class DunningStep:
    """One level of the procedure: applies from ``min_days`` past due, when the items at or above
    it total at least ``min_cents``."""

    name: str
    min_days: int
    description: str = ""
    credit_hold: bool = False
    min_cents: int = 0
    template_name: str = ""

    @property
    def template(self) -> str:
        """Template base name, e.g. ``second_notice``."""
        return self.template_name or re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")


def make_ladder(steps: Iterable[DunningStep | tuple]) -> tuple[DunningStep, ...]:
    """A validated ladder from steps or ``(name, min_days[, description[, credit_hold[, min_cents]]])`` tuples.

    Raises
    ------
    UserError
        Empty ladder, a first step below 1 day, thresholds not strictly increasing, a negative
        minimum or a name used twice.

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
    for s in ladder:
        if s.min_cents < 0:
            raise UserError(f"dunning ladder: level {s.name!r} min_amount {money_text(s.min_cents)} is negative")
    names = [s.name for s in ladder]
    if len(set(names)) != len(names):
        raise UserError(f"dunning ladder: level names must differ, got {names}")
    return ladder


@dataclasses.dataclass(frozen=True)
class Procedure:
    """The dunning procedure in force (see the module docstring for how it is applied)."""

    levels: tuple[DunningStep, ...]
    name: str = "Standard"
    grace_days: int = 0
    interval_days: int = 7
    min_account_cents: int = 0
    exclude_disputed: bool = True
    source: str = ""
    digest: str = ""

    def level_of(self, step: DunningStep) -> int:
        """1-based level number of ``step``."""
        return self.levels.index(step) + 1

    @property
    def label(self) -> str:
        """``name (sha256 prefix of the file)`` as recorded with each run."""
        return f"{self.name} ({self.digest[:12]})" if self.digest else self.name

    def describe(self) -> pd.DataFrame:
        """The levels as a table for display: ``level, step, from_days, min_amount_cents, credit_hold,
        template, description``."""
        return pd.DataFrame([{"level": i, "step": s.name, "from_days": s.min_days, "min_amount_cents": s.min_cents,
                              "credit_hold": s.credit_hold, "template": s.template, "description": s.description}
                             for i, s in enumerate(self.levels, 1)])


def _cents(value, where: str) -> int:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise UserError(f"{where}: {value!r} is not an amount") from None
    if not amount.is_finite() or amount < 0:
        raise UserError(f"{where}: {value!r} must be an amount of 0 or more")
    return int((amount * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def _int(value, where: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{where}: {value!r} must be a whole number of {low} or more")
    return value


def parse_procedure(text: str, source: str = "") -> Procedure:
    """A :class:`Procedure` from TOML text (the format of ``procedure.toml``).

    Raises
    ------
    UserError
        Not TOML, an unknown key, a missing level field, or a value out of range; the message names
        the file and the field.

    Example
    -------
    >>> p = parse_procedure('[procedure]\\ngrace_days = 3\\n[[levels]]\\nname = "reminder"\\ndays = 1\\n')
    >>> p.grace_days, p.levels[0].name
    (3, 'reminder')
    """
    where = source or "dunning procedure"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{where}: not valid TOML ({exc})") from None
    unknown = set(data) - {"procedure", "levels"}
    if unknown:
        raise UserError(f"{where}: unknown section(s) {', '.join(sorted(unknown))} (use [procedure] and [[levels]])")
    head = data.get("procedure", {})
    allowed = {"name", "grace_days", "interval_days", "min_account_amount", "exclude_disputed"}
    if set(head) - allowed:
        raise UserError(f"{where}: [procedure] has unknown key(s) {', '.join(sorted(set(head) - allowed))}")
    levels = []
    for i, lv in enumerate(data.get("levels", []), 1):
        at = f"{where}: level {i}"
        extra = set(lv) - {"name", "days", "min_amount", "description", "credit_hold", "template"}
        if extra:
            raise UserError(f"{at} has unknown key(s) {', '.join(sorted(extra))}")
        if not isinstance(lv.get("name"), str) or not lv["name"].strip():
            raise UserError(f"{at}: 'name' is required")
        if not re.fullmatch(r"[A-Za-z0-9_]*", str(lv.get("template", ""))):
            raise UserError(f"{at}: template {lv.get('template')!r} may hold only letters, digits and _")
        levels.append(DunningStep(
            name=lv["name"].strip(), min_days=_int(lv.get("days"), f"{at} 'days'", 1),
            description=str(lv.get("description", "")), credit_hold=bool(lv.get("credit_hold", False)),
            min_cents=_cents(lv.get("min_amount", 0), f"{at} 'min_amount'"),
            template_name=str(lv.get("template", ""))))
    try:
        ladder = make_ladder(levels)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    return Procedure(
        levels=ladder, name=str(head.get("name", "Standard")),
        grace_days=_int(head.get("grace_days", 0), f"{where}: grace_days"),
        interval_days=_int(head.get("interval_days", 7), f"{where}: interval_days"),
        min_account_cents=_cents(head.get("min_account_amount", 0), f"{where}: min_account_amount"),
        exclude_disputed=bool(head.get("exclude_disputed", True)), source=source,
        digest=hashlib.sha256(text.encode("utf-8")).hexdigest())


@functools.lru_cache(maxsize=16)
def _load_cached(path: str, mtime_ns: int) -> Procedure:
    return parse_procedure(Path(path).read_text(encoding="utf-8"), source=path)


def load_procedure(path: str | Path | None = None) -> Procedure:
    """Read a procedure file (cached until the file changes).

    Parameters
    ----------
    path : str or Path, optional
        Default: ``$AR_DUNNING_FILE`` if set, else the bundled ``procedure.toml``.

    Returns
    -------
    Procedure

    Raises
    ------
    UserError
        The file is missing or invalid.

    Example
    -------
    >>> [s.name for s in load_procedure().levels][:2]
    ['reminder', 'second notice']
    """
    path = Path(path or os.environ.get(PROCEDURE_ENV) or DEFAULT_PROCEDURE_FILE)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise UserError(f"{PROCEDURE_ENV}: dunning procedure file {str(path)!r} not found") from None
    return _load_cached(str(path.resolve()), mtime)


def current_procedure() -> Procedure:
    """The procedure in force: :func:`load_procedure` with no argument.

    Example
    -------
    >>> current_procedure().levels[-1].name
    'collection agency'
    """
    return load_procedure()


DUNNING_LADDER: tuple[DunningStep, ...] = load_procedure(DEFAULT_PROCEDURE_FILE).levels
STEPS: tuple[str, ...] = tuple(s.name for s in DUNNING_LADDER)


def _procedure(ladder) -> Procedure:
    """A Procedure from what callers pass: None (the one in force), a Procedure, or a bare ladder."""
    if ladder is None:
        return current_procedure()
    if isinstance(ladder, Procedure):
        return ladder
    return Procedure(levels=tuple(ladder))


def step_for(days_past_due, ladder=None) -> DunningStep | None:
    """The level whose days threshold ``days_past_due`` reaches, ignoring amounts (None when current)."""
    if days_past_due is None or pd.isna(days_past_due):
        return None
    proc = _procedure(ladder)
    if days_past_due <= proc.grace_days:
        return None
    found = None
    for step in proc.levels:
        if days_past_due >= step.min_days:
            found = step
    return found


def account_step(items: Iterable[tuple[int, int]], ladder=None) -> DunningStep | None:
    """The step of one account from its counted items.

    Parameters
    ----------
    items : iterable of (days_past_due, open_cents)
        The account's items still owed, not disputed, not blocked (those past grace are kept here).
    ladder : Procedure or sequence of DunningStep, optional
        Default :func:`current_procedure`.

    Returns
    -------
    DunningStep or None
        The highest level for which the items at or above its days threshold total at least its
        minimum, if all counted items reach the per-account minimum; else None.

    Example
    -------
    >>> account_step([(125, 49_840), (3, 3_306_856)]).name   # 498.40 < the agency's 500.00 at 121+ days
    'hold'
    >>> account_step([(125, 7_499)]).name
    'call'
    """
    proc = _procedure(ladder)
    counted = [(int(d), int(c)) for d, c in items if d is not None and d > proc.grace_days and c > 0]
    if not counted or sum(c for _, c in counted) < max(proc.min_account_cents, 1):
        return None
    found = None
    for step in proc.levels:
        total = sum(c for d, c in counted if d >= step.min_days)
        if total > 0 and total >= step.min_cents:
            found = step
    return found


def next_step(days_past_due, ladder=None) -> str | None:
    """Name of the dunning step of an account.

    Parameters
    ----------
    days_past_due : int, None, or iterable of (days_past_due, open_cents)
        Either the account's counted items (then amounts count: see :func:`account_step`), or
        only its worst days past due (then the days thresholds alone decide; <= 0 or None: current).
    ladder : Procedure or sequence of DunningStep, optional
        Default :func:`current_procedure`.

    Returns
    -------
    str or None
        ``reminder``, ``second notice``, ``call``, ``escalation``, ``hold`` or ``collection agency``
        with the default procedure; None when nothing is due.

    Example
    -------
    >>> [next_step(d) for d in (0, 1, 30, 31, 120, 121)]
    [None, 'reminder', 'second notice', 'call', 'hold', 'collection agency']
    >>> next_step([(130, 7_499)])
    'call'
    """
    if hasattr(days_past_due, "__iter__") and not isinstance(days_past_due, (str, bytes)):
        step = account_step(days_past_due, ladder)
    else:
        step = step_for(days_past_due, ladder)
    return step.name if step else None


def _step(name: str, ladder) -> DunningStep:
    proc = _procedure(ladder)
    for s in proc.levels:
        if s.name == name or s.template == name:
            return s
    raise UserError(f"step: unknown dunning step {name!r} (one of {', '.join(s.name for s in proc.levels)})")


# ------------------------------------------------------------------------------------------------
# Candidates
# ------------------------------------------------------------------------------------------------
def _disputed_ids(as_of: dt.date) -> sa.Select:
    return sa.select(open_disputes_at(as_of).subquery("open_disputes").c.invoice_id)


def _blocked_ids() -> sa.Select:
    b = schema.dunning_blocks
    return sa.select(b.c.invoice_id).where(b.c.released_at.is_(None), b.c.invoice_id.is_not(None))


def _blocked_customers() -> sa.Select:
    b = schema.dunning_blocks
    return sa.select(b.c.customer_id).where(b.c.released_at.is_(None), b.c.invoice_id.is_(None))


ITEM_COLUMNS = ["customer_id", "currency", "invoice_id", "doc_type", "invoice_date", "due_date", "days_past_due",
                "open_cents", "in_dispute", "blocked", "counted"]


def account_items(conn: sa.Connection | sa.Engine, as_of: dt.date, flt: LedgerFilter = NO_FILTER,
                  ladder=None) -> pd.DataFrame:
    """Every open item at ``as_of`` with whether the procedure counts it for dunning.

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    as_of : datetime.date
    flt : LedgerFilter, optional
    ladder : Procedure, optional
        Default :func:`current_procedure`.

    Returns
    -------
    pandas.DataFrame
        :data:`ITEM_COLUMNS`, oldest due first per customer. ``counted``: owed (open > 0), more than
        ``grace_days`` past due, not in an open dispute (when excluded) and not blocked.

    Example
    -------
    >>> account_items(engine, dt.date(2024, 6, 30), LedgerFilter(customers=("K1",)))  # doctest: +SKIP
    """
    if isinstance(conn, sa.Engine):
        with conn.connect() as c:
            return account_items(c, as_of, flt, ladder)
    proc = _procedure(ladder)
    oi = instalments.aged_items(conn, as_of, flt)  # an invoice with a schedule: one row per open instalment
    stmt = sa.select(
        oi.c.customer_id, oi.c.currency, oi.c.invoice_id, oi.c.doc_type, oi.c.invoice_date, oi.c.due_date,
        oi.c.days_past_due, oi.c.open_cents,
        sa.case((oi.c.invoice_id.in_(_disputed_ids(as_of)), True), else_=False).label("in_dispute"),
        sa.case((sa.or_(oi.c.invoice_id.in_(_blocked_ids()), oi.c.customer_id.in_(_blocked_customers())), True),
                else_=False).label("blocked"),
    ).order_by(oi.c.customer_id, oi.c.due_date, oi.c.invoice_id)
    rows = conn.execute(stmt).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=ITEM_COLUMNS[:-1])
    for c in ("days_past_due", "open_cents"):
        frame[c] = frame[c].astype("int64")
    for c in ("in_dispute", "blocked"):
        frame[c] = frame[c].astype(bool)
    frame["counted"] = ((frame["open_cents"] > 0) & (frame["days_past_due"] > max(proc.grace_days, 0))
                        & ~(frame["in_dispute"] & proc.exclude_disputed) & ~frame["blocked"])
    return frame


def letter_lines(items: pd.DataFrame, step: DunningStep) -> pd.DataFrame:
    """The rows of ``items`` (one account, from :func:`account_items`) a letter at ``step`` lists:
    the counted items at or above its days threshold.

    Example
    -------
    >>> letter_lines(account_items(engine, day, LedgerFilter(customers=("K1",))), step)  # doctest: +SKIP
    """
    return items[items["counted"] & (items["days_past_due"] >= step.min_days)]


CANDIDATE_COLUMNS = ["customer_id", "customer_name", "collector_id", "collector_name", "currency",
                     "max_days_past_due", "bucket", "step", "level", "credit_hold", "open_items", "overdue_items",
                     "open_cents", "overdue_cents", "disputed_cents", "letter_items", "letter_cents"]


def assess(items: pd.DataFrame, ladder=None) -> pd.DataFrame:
    """Per account (customer, currency) of :func:`account_items`: its step, level and the letter's
    items and total, plus open / overdue / disputed totals.

    Returns
    -------
    pandas.DataFrame
        ``customer_id, currency, max_days_past_due, step, level, credit_hold, open_items, overdue_items,
        open_cents, overdue_cents, disputed_cents, letter_items, letter_cents`` for every account
        with open items; ``step`` None when nothing is due.

    Example
    -------
    >>> assess(account_items(engine, dt.date(2024, 6, 30)))  # doctest: +SKIP
    """
    proc = _procedure(ladder)
    cols = [c for c in CANDIDATE_COLUMNS if c not in ("customer_name", "collector_id", "collector_name", "bucket")]
    if items.empty:
        return pd.DataFrame(columns=cols)
    # Set-based (one groupby), the same rules as account_step and letter_lines per account: a Python loop
    # over the accounts took 36 s of the worklist at 1M invoices.
    key = ["customer_id", "currency"]
    days = pd.to_numeric(items["days_past_due"], errors="coerce")
    cents = pd.to_numeric(items["open_cents"]).astype("int64")
    counted = items["counted"].astype(bool).to_numpy()
    disputed = items["in_dispute"].astype(bool).to_numpy()
    owed = counted & (days > proc.grace_days).to_numpy() & (cents > 0).to_numpy()  # what account_step counts
    overdue = (days > 0).to_numpy() & (cents > 0).to_numpy() & ~disputed
    parts = {"open_items": np.ones(len(items), dtype="int64"), "open_cents": cents.to_numpy(),
             "overdue_items": overdue.astype("int64"), "overdue_cents": np.where(overdue, cents, 0),
             "disputed_cents": np.where(disputed, cents, 0), "owed_cents": np.where(owed, cents, 0),
             "counted_days": np.where(counted, days, np.nan)}
    for k, step in enumerate(proc.levels):
        parts[f"level_{k}"] = np.where(owed & (days >= step.min_days).to_numpy(), cents, 0)
    frame = pd.DataFrame(parts, index=items.index).join(items[key])
    sums = {c: "sum" for c in parts if c != "counted_days"}
    acc = frame.groupby(key, sort=True).agg({**sums, "counted_days": "max"}).reset_index()
    level = np.zeros(len(acc), dtype="int64")  # the last level whose threshold total is met (0: none)
    for k, step in enumerate(proc.levels):
        total = acc[f"level_{k}"]
        level = np.where((total > 0) & (total >= step.min_cents), k + 1, level)
    level = np.where((acc["owed_cents"] > 0) & (acc["owed_cents"] >= max(proc.min_account_cents, 1)), level, 0)
    steps = [proc.levels[v - 1] if v else None for v in level]
    acc["level"] = level
    acc["step"] = [st.name if st else None for st in steps]
    acc["credit_hold"] = [bool(st.credit_hold) if st else False for st in steps]
    acc["max_days_past_due"] = acc["counted_days"].fillna(0).astype("int64")
    # the letter: the counted items at or above the step's days threshold (letter_lines)
    threshold = pd.Series([st.min_days if st else np.nan for st in steps], index=pd.MultiIndex.from_frame(acc[key]))
    row_threshold = threshold.reindex(pd.MultiIndex.from_frame(items[key])).to_numpy()
    listed = counted & (days.to_numpy() >= row_threshold)  # NaN threshold (no step): nothing listed
    letter = (pd.DataFrame({"letter_items": listed.astype("int64"), "letter_cents": np.where(listed, cents, 0)},
                           index=items.index).join(items[key]).groupby(key, sort=True).sum().reset_index())
    acc = acc.merge(letter, on=key, how="left")
    for c in ("open_items", "overdue_items", "open_cents", "overdue_cents", "disputed_cents", "letter_items",
              "letter_cents"):
        acc[c] = acc[c].astype("int64")
    return acc[cols]


def account_steps(conn: sa.Connection | sa.Engine, as_of: dt.date, customer_ids: Iterable[str] | None = None,
                  ladder=None) -> dict[str, str]:
    """Customer id -> its dunning step at ``as_of`` by the procedure (customers with none left out).

    For a customer with accounts in several currencies, the highest step of them. This is what
    the worklist shows as the next step.

    Example
    -------
    >>> account_steps(engine, dt.date(2024, 6, 30))  # doctest: +SKIP
    {'K1': 'collection agency', 'K2': 'reminder'}
    """
    flt = NO_FILTER if customer_ids is None else LedgerFilter(customers=tuple(customer_ids))
    acc = assess(account_items(conn, as_of, flt, ladder), ladder)
    acc = acc[acc["step"].notna()].sort_values(["customer_id", "level"])
    return dict(zip(acc["customer_id"], acc["step"]))


def dunning_candidates(conn: sa.Connection | sa.Engine, as_of: dt.date, flt: LedgerFilter = NO_FILTER,
                       steps: Iterable[str] | None = None, ladder=None) -> pd.DataFrame:
    """Accounts due a dunning letter at ``as_of`` by the procedure, highest level first.

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    as_of : datetime.date
    flt : LedgerFilter, optional
        Scope (use :func:`analytics.auth.scope_filter` for a collector).
    steps : iterable of str, optional
        Keep only accounts at these steps (e.g. ``["reminder", "second notice"]``).
    ladder : Procedure, optional
        Default :func:`current_procedure`.

    Returns
    -------
    pandas.DataFrame
        :data:`CANDIDATE_COLUMNS`: ``max_days_past_due`` is the worst counted item, ``overdue_cents``
        everything overdue and not disputed, ``letter_items`` / ``letter_cents`` what the letter lists
        (the counted items at or above the step's days).

    Example
    -------
    >>> dunning_candidates(conn, dt.date(2024, 3, 31), steps=["hold"])  # doctest: +SKIP
    """
    if isinstance(conn, sa.Engine):
        with conn.connect() as c:
            return dunning_candidates(c, as_of, flt, steps, ladder)
    proc = _procedure(ladder)
    acc = assess(account_items(conn, as_of, flt, proc), proc)
    acc = acc[acc["step"].notna()]
    if steps is not None:
        wanted = {_step(s, proc).name for s in steps}
        acc = acc[acc["step"].isin(wanted)]
    cust, col = schema.customers, schema.collectors
    ids = sorted(set(acc["customer_id"]))
    names = pd.DataFrame(conn.execute(
        sa.select(cust.c.id.label("customer_id"), cust.c.name.label("customer_name"), cust.c.collector_id,
                  col.c.name.label("collector_name"))
        .select_from(cust.outerjoin(col, col.c.id == cust.c.collector_id)).where(cust.c.id.in_(ids))).all(),
        columns=["customer_id", "customer_name", "collector_id", "collector_name"])
    frame = acc.merge(names, on="customer_id", how="left")
    frame["bucket"] = pd.Series([_bucket_label(d) for d in frame["max_days_past_due"]], index=frame.index,
                                dtype=object)
    frame = frame.sort_values(["level", "max_days_past_due", "letter_cents", "customer_id", "currency"],
                              ascending=[False, False, False, True, True], kind="stable")
    for c in ("customer_id", "customer_name", "collector_id", "collector_name", "currency", "step"):
        frame[c] = frame[c].astype(object)
    for c in ("max_days_past_due", "level", "open_items", "overdue_items", "open_cents", "overdue_cents",
              "disputed_cents", "letter_items", "letter_cents"):
        frame[c] = frame[c].astype("int64")
    frame["credit_hold"] = frame["credit_hold"].astype(bool)
    return frame[CANDIDATE_COLUMNS].reset_index(drop=True)


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


def _account(conn: sa.Connection, customer_id: str, as_of: dt.date, step: str | None, currency: str | None,
             proc: Procedure):
    """(customer row, items of the account, its step, the listed items) for one letter."""
    cust = conn.execute(sa.select(schema.customers).where(schema.customers.c.id == customer_id)).first()
    if cust is None:
        raise UserError(f"customer_id: unknown customer {customer_id!r}")
    items = account_items(conn, as_of, LedgerFilter(customers=(customer_id,)), proc)
    if items.empty:
        raise UserError(f"customer {customer_id!r} has no open items at {as_of.isoformat()}: nothing to write")
    acc = assess(items, proc)
    if currency is not None:
        if currency not in set(acc["currency"]):
            raise UserError(f"currency: customer {customer_id!r} has no open items in {currency!r}")
        acc = acc[acc["currency"] == currency]
    acc = acc.sort_values(["level", "letter_cents"], ascending=False, kind="stable")
    top = acc.iloc[0]
    if step is None:
        if top["step"] is None or pd.isna(top["step"]):
            raise UserError(f"customer {customer_id!r} has nothing due a letter at {as_of.isoformat()} by the "
                            f"dunning procedure (nothing overdue, or below its minimum amounts); "
                            f"pass step= to draft a letter anyway")
        found = _step(top["step"], proc)
    else:
        found = _step(step, proc)
    cur = top["currency"]
    account = items[items["currency"] == cur]
    listed = letter_lines(account, found)
    if listed.empty:
        raise UserError(f"customer {customer_id!r} has no counted item {found.min_days} or more days past due "
                        f"at {as_of.isoformat()}: nothing for a {found.name!r} letter")
    return cust, account, found, listed


def letter_items(conn: sa.Connection | sa.Engine, customer_id: str, as_of: dt.date, step: str | None = None,
                 currency: str | None = None, ladder=None) -> pd.DataFrame:
    """The items one account's letter lists at ``as_of``, oldest due first: exactly the counted
    items (owed, past grace, not disputed, not blocked) at or above the letter's level.

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    customer_id : str
    as_of : datetime.date
    step : str, optional
        Default the account's step by the procedure.
    currency : str, optional
        The account's currency (default: the customer's account at the highest step).
    ladder : Procedure, optional

    Returns
    -------
    pandas.DataFrame
        ``invoice_id, doc_type, invoice_date, due_date, days_past_due, currency, open_cents, in_dispute``.

    Example
    -------
    >>> letter_items(engine, "K1", dt.date(2024, 6, 30))["invoice_id"].tolist()  # doctest: +SKIP
    ['A1']
    """
    if isinstance(conn, sa.Engine):
        with conn.connect() as c:
            return letter_items(c, customer_id, as_of, step, currency, ladder)
    _, _, _, listed = _account(conn, customer_id, as_of, step, currency, _procedure(ladder))
    return listed[["invoice_id", "doc_type", "invoice_date", "due_date", "days_past_due", "currency", "open_cents",
                   "in_dispute"]].reset_index(drop=True)


def _sender_dict(sender) -> dict:
    return dataclasses.asdict(sender) if isinstance(sender, Sender) else dict(sender)


def letter_context(conn: sa.Connection, customer_id: str, as_of: dt.date, step: str | None = None,
                   sender: Sender | dict = DEFAULT_SENDER, ladder=None, currency: str | None = None):
    """(step, template variables) of one account's letter; see :func:`draft_letter`.

    Variables: ``customer`` (id, name, country, currency, email), ``as_of``, ``as_of_text``, ``step``,
    ``level`` (number, name, days, min_amount_text), ``credit_hold``, ``items`` (the listed items),
    ``totals`` (per currency: ``due_cents``, ``due_text``, ``due_plain``), ``overdue_text`` and
    ``due_text`` (the total asked for, with currency), ``sender``.

    Example
    -------
    >>> step, ctx = letter_context(conn, "K1", dt.date(2024, 6, 30))  # doctest: +SKIP
    """
    proc = _procedure(ladder)
    cust, _, found, listed = _account(conn, customer_id, as_of, step, currency, proc)
    cur = str(listed["currency"].iloc[0])
    due = int(listed["open_cents"].sum())
    totals = [{"currency": cur, "due_cents": due, "due_text": money_text(due, cur), "due_plain": money_text(due),
               # the names templates before the procedure used: the listed total is what is asked for
               "overdue_cents": due, "overdue_text": money_text(due, cur), "overdue_plain": money_text(due),
               "open_cents": due, "open_text": money_text(due, cur), "open_plain": money_text(due)}]
    items = [{
        "invoice_id": r.invoice_id, "doc_type": r.doc_type, "invoice_date": r.invoice_date.isoformat(),
        "due_date": r.due_date.isoformat(), "days_past_due": int(r.days_past_due), "currency": r.currency,
        "open_cents": int(r.open_cents), "open_text": money_text(r.open_cents), "in_dispute": bool(r.in_dispute),
    } for r in listed.itertuples(index=False)]
    return found, {
        "customer": {"id": cust.id, "name": cust.name, "country": cust.country, "currency": cust.currency,
                     "email": getattr(cust, "email", None)},
        "as_of": as_of, "as_of_text": as_of.strftime("%d %B %Y").lstrip("0"),
        "step": found.name, "credit_hold": found.credit_hold,
        "level": {"number": proc.level_of(found), "name": found.name, "days": found.min_days,
                  "min_amount_text": money_text(found.min_cents, cur)},
        "items": items, "totals": totals, "overdue_text": money_text(due, cur), "due_text": money_text(due, cur),
        "sender": _sender_dict(sender),
    }


def languages(template_dir: str | Path | None = None) -> list[str]:
    """Languages with their own letter templates: the sub-folders of ``dunning/`` (e.g. ``de``).

    Example
    -------
    >>> "de" in languages()
    True
    """
    base = Path(template_dir or TEMPLATE_DIR) / "dunning"
    return sorted(p.name for p in base.iterdir() if p.is_dir() and re.fullmatch(r"[a-z]{2}(_[A-Z]{2})?", p.name))


def render_letter(found: DunningStep, ctx: dict, fmt: str = "text", template_dir: str | Path | None = None,
                  language: str | None = None) -> str:
    """Render the ``dunning/<step>.<txt|html>.j2`` template with ``ctx`` (HTML autoescaped).

    With ``language`` (e.g. ``"de"``), ``dunning/<language>/<step>...`` is used where it exists, else the
    default template.

    Example
    -------
    >>> render_letter(*letter_context(conn, "K1", day), fmt="html")  # doctest: +SKIP
    """
    if fmt not in ("text", "html"):
        raise UserError(f"fmt: {fmt!r} must be 'text' or 'html'")
    if language is not None and language not in languages(template_dir):
        raise UserError(f"language: no letter templates for {language!r} (have: {', '.join(languages(template_dir))})")
    base = f"{found.template}.{'html' if fmt == 'html' else 'txt'}.j2"
    names = ([f"dunning/{language}/{base}"] if language else []) + [f"dunning/{base}"]
    name = names[-1]
    try:
        return _environment(template_dir).select_template(names).render(**ctx)
    except jinja2.TemplateNotFound as exc:
        raise UserError(f"template: {exc.name} not found in {template_dir or TEMPLATE_DIR}") from exc
    except jinja2.TemplateError as exc:
        raise UserError(f"template {name}: {exc}") from exc


def draft_letter(conn: sa.Connection | sa.Engine, customer_id: str, as_of: dt.date, step: str | None = None,
                 sender: Sender | dict = DEFAULT_SENDER, fmt: str = "text", *, record: bool = False, user=None,
                 ladder=None, template_dir: str | Path | None = None, currency: str | None = None,
                 language: str | None = None) -> str:
    """Draft the dunning letter for one account (nothing is sent).

    Lists exactly the items the procedure counts at or above the letter's level (document, date,
    due date, days past due, open amount) and their total, which is the amount asked for.

    Parameters
    ----------
    conn : sqlalchemy.Connection or Engine
    customer_id : str
    as_of : datetime.date
    step : str, optional
        Level to write at; default the account's step by the procedure.
    sender : Sender or dict, optional
        Name, department, company, email, phone, address of the signer.
    fmt : {"text", "html"}
        Plain text, or HTML (autoescaped).
    record : bool, default False
        Also log a ``letter`` activity for the customer (needs ``user``).
    user : analytics.auth.User, optional
        When given, checked for ``draft_letters`` on the customer (collectors: own portfolio).
    ladder : Procedure, optional
        Default :func:`current_procedure`.
    template_dir : path, optional
        Directory holding ``dunning/<step>.<txt|html>.j2`` (default the bundled templates).
    currency : str, optional
        The account's currency when the customer has several.
    language : str, optional
        Use ``dunning/<language>/`` templates where they exist (:func:`languages`).

    Returns
    -------
    str
        The letter.

    Raises
    ------
    UserError
        Unknown customer, nothing open, nothing due and no ``step``, no item at the step, unknown
        step or format.

    Example
    -------
    >>> print(draft_letter(engine, "K1", dt.date(2024, 6, 30)))  # doctest: +SKIP
    """
    return _draft(conn, customer_id, as_of, step, sender, fmt, record, user, ladder, template_dir, currency,
                  language)[1]


def _draft(conn, customer_id, as_of, step, sender, fmt, record, user, ladder, template_dir, currency=None,
           language=None):
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
            found, ctx = letter_context(c, customer_id, as_of, step, sender, ladder, currency)
        engine = conn
    else:
        found, ctx = letter_context(conn, customer_id, as_of, step, sender, ladder, currency)
        engine = conn.engine
    text = render_letter(found, ctx, fmt, template_dir, language)
    if record:
        from analytics.workflow import log_activity

        log_activity(engine, user, customer_id, "letter", outcome=f"dunning: {found.name}"[:64],
                     note=f"{found.name} letter drafted as of {as_of.isoformat()}: {ctx['overdue_text']} due")
    return found, text


def safe_file_name(name: str) -> str:
    """A file-name-safe form of ``name`` (letters, digits, _ . -).

    Example
    -------
    >>> safe_file_name("a/b c")
    'a_b_c'
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "customer"


_safe = safe_file_name


def draft_letters(conn: sa.Connection | sa.Engine, customer_ids: Iterable[str], as_of: dt.date,
                  sender: Sender | dict = DEFAULT_SENDER, fmt: str = "text", *, record: bool = False, user=None,
                  ladder=None, template_dir: str | Path | None = None) -> bytes:
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
