"""Shared building blocks for every dashboard page.

Pages are thin: they call :func:`require_page` (sign-in and role check), :func:`sidebar_filters`
(the shared filters, kept across pages), :func:`cached` (an ``analytics`` call cached on its
arguments and the ledger version), and render the result with the formatting and download helpers
here. All numbers come from :mod:`analytics`; nothing in the dashboard computes a KPI.

A page file looks like::

    from dashboard import common as ui
    from analytics import kpis

    user = ui.require_page("aging")
    as_of, flt = ui.sidebar_filters()
    frame = ui.cached(kpis.aging, as_of, flt)
    ui.table(frame, "aging")
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import io
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run dashboard/app.py` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402
import streamlit as st  # noqa: E402

from analytics import db, schema  # noqa: E402
from analytics.errors import UserError  # noqa: E402
from analytics.ledger import LedgerFilter  # noqa: E402

log = logging.getLogger("dashboard")
PAGES_DIR = ROOT / "pages"
IDLE_MINUTES = float(os.environ.get("AR_IDLE_MINUTES", "30"))
# Tests set this so a bug in a page surfaces as an exception (AppTest.exception) instead of the
# friendly box users see.
RAISE_ENV = "AR_DASHBOARD_RAISE"
GENERIC_ERROR = "Something went wrong while preparing this view."

USER_KEY = "user"
LAST_SEEN_KEY = "_last_seen"


# ---------------------------------------------------------------------------------------------
# Pages: one registry, read by app.py (navigation) and by every page (access check)
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PageSpec:
    """A dashboard page: its file under ``pages/``, title, navigation group and the
    :data:`analytics.auth.ACTIONS` action a user needs to open it."""

    key: str
    title: str
    icon: str
    group: str
    action: str

    @property
    def path(self) -> Path:
        return PAGES_DIR / f"{self.key}.py"


PAGES: tuple[PageSpec, ...] = (
    PageSpec("overview", "Overview", ":material/dashboard:", "Manage", "view_kpis"),
    PageSpec("aging", "Aging", ":material/stacked_bar_chart:", "Manage", "view_kpis"),
    PageSpec("sla", "SLA", ":material/timer:", "Manage", "view_all"),
    PageSpec("collectors", "Collectors", ":material/groups:", "Manage", "view_all"),
    PageSpec("worklist", "Worklist", ":material/checklist:", "Collect", "view_worklist"),
    PageSpec("customer_360", "Customer 360", ":material/person_search:", "Collect", "view"),
    PageSpec("disputes_promises", "Disputes & Promises", ":material/handshake:", "Collect", "view"),
    PageSpec("dunning", "Dunning", ":material/mail:", "Collect", "draft_letters"),
    PageSpec("risk", "Risk", ":material/warning:", "Collect", "view_risk"),
    PageSpec("cash_forecast", "Cash forecast", ":material/trending_up:", "Finance", "view_forecast"),
    PageSpec("cash_application", "Cash application", ":material/receipt_long:", "Finance", "cash_application"),
    PageSpec("data", "Data", ":material/database:", "Data", "import"),
)
PAGES_BY_KEY = {p.key: p for p in PAGES}
GROUPS = ("Manage", "Collect", "Finance", "Data")


#: Actions that only write. On a read-only database :func:`can` says no to them, so every form gated
#: on ``can(user, ...)`` disappears; the pages say why with :func:`readonly_notice`.
WRITE_ACTIONS = frozenset({"write_activity", "record_promise", "manage_disputes", "propose_writeoff",
                           "approve_writeoff", "import", "manage_users"})


def can(user, action: str) -> bool:
    """Whether ``user`` may do ``action`` (role only; portfolio checks happen in analytics).

    Always False for a :data:`WRITE_ACTIONS` action on a read-only database (:func:`read_only`).
    """
    from analytics import auth

    if action in WRITE_ACTIONS and read_only():
        return False
    return auth.can(user, action)


def may_open(user, key: str) -> bool:
    """Whether ``user``'s role may open page ``key`` (also on a read-only database: pages then hide their forms)."""
    from analytics import auth

    spec = PAGES_BY_KEY.get(key)
    return bool(user is not None and spec is not None and auth.can(user, spec.action))


def read_only() -> bool:
    """Whether the dashboard's database is read-only (``AR_DB_READONLY``, see :func:`analytics.db.is_readonly`)."""
    if db.readonly_env():
        return True
    try:
        return db.is_readonly(_engine_for(db_url()))
    except Exception:  # not reachable: get_engine() reports it on the page
        return False


def readonly_notice(what: str = "Recording work") -> None:
    """The calm note a page shows instead of its write forms on a read-only database."""
    st.info(f"{what} is switched off: this database is read-only ({db.READONLY_ENV}). Record work and load "
            "data in the operational database.", icon=":material/lock:")


def allowed_pages(user) -> list[PageSpec]:
    """The pages ``user`` may open whose file exists (pages owned by other modules may not yet)."""
    return [p for p in PAGES if may_open(user, p.key) and p.path.is_file()]


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------
def _raise_in_tests() -> bool:
    return os.environ.get(RAISE_ENV, "") not in ("", "0")


def attempt(fn: Callable, *args, **kwargs) -> tuple[bool, Any]:
    """Call ``fn``; returns ``(True, result)``, or ``(False, None)`` after showing why it failed.

    A :class:`UserError` is shown as it is (it is written for people). On a read-only database a
    write the database itself refused (permission denied, read-only transaction) is shown as
    "this database is read-only". Anything else shows a short message with a reference; the
    traceback goes to the server log, never to the page.
    """
    try:
        return True, fn(*args, **kwargs)
    except UserError as exc:
        st.error(str(exc), icon=":material/error:")
    except sa.exc.DBAPIError as exc:
        if _readonly_refusal(exc):
            log.warning("write refused by a read-only database: %s", exc)
            st.error(db.readonly_message()[:1].upper() + db.readonly_message()[1:], icon=":material/lock:")
        elif isinstance(exc, sa.exc.OperationalError):
            if _raise_in_tests():
                raise
            log.error("database error: %s", exc, exc_info=True)
            st.error("The database did not answer. Check that it is running, then try again.",
                     icon=":material/cloud_off:")
        else:
            _unexpected()
    except Exception:
        _unexpected()
    return False, None


def _readonly_refusal(exc: sa.exc.DBAPIError) -> bool:
    """A write refused because the database (or the role) is read-only, on a read-only database."""
    text = str(getattr(exc, "orig", exc)).lower()
    return read_only() and any(s in text for s in (
        "permission denied", "read-only", "read only", "readonly", "insufficient privilege", "access denied"))


def _unexpected() -> None:
    if _raise_in_tests():
        raise
    ref = uuid.uuid4().hex[:8]
    log.exception("unexpected error (ref %s)", ref)
    st.error(f"{GENERIC_ERROR} The details are in the server log (reference {ref}).",
             icon=":material/error:")


def run_safely(fn: Callable, *args, **kwargs):
    """Like :func:`attempt` but returns only ``fn``'s result (None when it failed)."""
    return attempt(fn, *args, **kwargs)[1]


def empty_state(message: str) -> None:
    """A calm note for an empty result ("No open disputes for this filter")."""
    st.info(message, icon=":material/inbox:")


# ---------------------------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------------------------
def db_url() -> str:
    return db.default_url()


@st.cache_resource(show_spinner=False)
def _engine_for(url: str) -> sa.Engine:
    return db.connect(url)


def get_engine() -> sa.Engine:
    """The engine for the configured database URL (one per URL per server process).

    When the database cannot be reached the page shows a friendly message and a retry button and
    stops; no traceback. (A failed connection is not cached, so Retry tries again.)
    """
    url = db_url()
    try:
        return _engine_for(url)
    except UserError as exc:  # read-only and a table is missing: the message says which and what to do
        log.error("cannot use database %s: %s", _safe_url(url), exc)
        st.error(str(exc), icon=":material/database:")
        if st.button("Retry", key="_db_retry", icon=":material/refresh:"):
            st.rerun()
        st.stop()
    except Exception as exc:  # the database is down, the file is locked, the URL is wrong...
        log.error("cannot open database %s: %s", _safe_url(url), exc, exc_info=True)
        st.error(
            f"Cannot reach the database ({_safe_url(url)}). Check that it is running and that "
            "the address in AR_DB_URL is right.", icon=":material/cloud_off:")
        if st.button("Retry", key="_db_retry", icon=":material/refresh:"):
            st.rerun()
        st.stop()


def _safe_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "configured database"


def ledger_version() -> int:
    return db.ledger_version(get_engine())


@st.cache_data(show_spinner=False, max_entries=512, ttl=6 * 3600)
def _cached_call(key: str, url: str, version: int, args: tuple, kwargs: tuple, _fn: Callable):
    engine = _engine_for(url)
    with engine.connect() as conn:
        return _fn(conn, *args, **dict(kwargs))


def cached(fn: Callable, *args, **kwargs):
    """``fn(conn, *args, **kwargs)`` cached on the function, its arguments and the ledger version.

    Arguments must be hashable values (dates, strings, tuples, :class:`LedgerFilter`...). A new
    import or a logged activity bumps the ledger version, so stale results are never shown. Not
    keyed on any global state: two sessions with the same arguments share the result.
    """
    key = f"{fn.__module__}:{getattr(fn, '__qualname__', repr(fn))}"
    if "<" in key:  # lambdas and local functions share a name: they would share cache entries
        raise ValueError(f"cached() needs a module-level function, got {key}")
    engine = get_engine()
    version = db.ledger_version(engine)
    url = engine.url.render_as_string(hide_password=False)
    return _cached_call(key, url, version, tuple(args), tuple(sorted(kwargs.items())), _fn=fn)


def clear_caches() -> None:
    _cached_call.clear()


# ---------------------------------------------------------------------------------------------
# Sign-in, sign-out, idle expiry
# ---------------------------------------------------------------------------------------------
def current_user():
    """The signed-in :class:`analytics.auth.User`, or None (also None once the session idled out)."""
    user = st.session_state.get(USER_KEY)
    if user is None:
        return None
    last = st.session_state.get(LAST_SEEN_KEY)
    now = time.time()
    if last is not None and IDLE_MINUTES > 0 and now - last > IDLE_MINUTES * 60:
        sign_out(reason=f"You were signed out after {IDLE_MINUTES:g} minutes without activity.")
        return None
    st.session_state[LAST_SEEN_KEY] = now
    return user


def sign_out(reason: str | None = None) -> None:
    for key in list(st.session_state.keys()):
        if not str(key).startswith("_signin"):
            del st.session_state[key]
    if reason:
        st.session_state["_signin_notice"] = reason


def sign_in_form(engine: sa.Engine) -> None:
    """The sign-in screen. Sets the user in the session and reruns on success."""
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        _sign_in_body(engine)


def _sign_in_body(engine: sa.Engine) -> None:
    from analytics import auth

    notice = st.session_state.pop("_signin_notice", None)
    st.title("AR Collections Analytics")
    if notice:
        st.info(notice, icon=":material/logout:")
    if db.is_readonly(engine) and not _readonly_sign_in_possible(engine):
        return
    if not _has_users(engine):
        _first_admin_form(engine)
        return
    failures = st.session_state.get("_signin_failures", 0)
    with st.form("signin", border=True):
        st.subheader("Sign in")
        username = st.text_input("Username", key="_signin_user")
        password = st.text_input("Password", type="password", key="_signin_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    st.caption("Demo database: the demo accounts are listed in the README (`python -m analytics users demo`).")
    if submitted:
        if failures >= 5:
            time.sleep(min(5.0, 0.5 * (failures - 4)))  # slow down password guessing
        user = run_safely(auth.authenticate, engine, username.strip(), password)
        if user is None:
            st.session_state["_signin_failures"] = failures + 1
            st.error("Unknown username or wrong password.", icon=":material/lock:")
        else:
            st.session_state["_signin_failures"] = 0
            st.session_state[USER_KEY] = user
            st.session_state[LAST_SEEN_KEY] = time.time()
            st.rerun()


READONLY_NO_USERS = (
    "Nobody can sign in: this database is read-only ({env}) and has no readable `users` table. Sign-in "
    "always checks a password against `users`; give the dashboard's role SELECT on a `users` table or view "
    "in this database (create the accounts with `python -m analytics users add` in the operational "
    "database and copy the table with your ETL), or run the dashboard without {env}.")
READONLY_EMPTY_USERS = (
    "Nobody can sign in: the `users` table of this read-only database ({env}) is empty, and a read-only "
    "database cannot get a first administrator here. Create the accounts in the operational database "
    "(`python -m analytics users add NAME --role admin`) and copy the `users` table with your ETL.")


def _readonly_sign_in_possible(engine: sa.Engine) -> bool:
    """On a read-only database: True when there are users to sign in, else explain why not (no fallback)."""
    if schema.users.name in db.missing_tables(engine):
        st.error(READONLY_NO_USERS.format(env=db.READONLY_ENV), icon=":material/lock:")
        return False
    if not _has_users(engine):
        st.error(READONLY_EMPTY_USERS.format(env=db.READONLY_ENV), icon=":material/lock:")
        return False
    return True


def _has_users(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(schema.users)).scalar() > 0


def _first_admin_form(engine: sa.Engine) -> None:
    from analytics import auth

    st.warning("This database has no users yet. Create the first administrator, or run "
               "`python -m analytics users add NAME --role admin`.", icon=":material/person_add:")
    with st.form("first_admin"):
        username = st.text_input("Administrator username", key="_signin_new_user")
        password = st.text_input("Password (at least 8 characters)", type="password", key="_signin_new_pw")
        submitted = st.form_submit_button("Create administrator", type="primary")
    if submitted:
        if _has_users(engine):  # someone else was quicker
            st.rerun()
        if len(password) < 8:
            st.error("The password needs at least 8 characters.")
            return
        run_safely(auth.add_user, engine, username.strip(), password, "admin")
        if _has_users(engine):
            st.session_state["_signin_notice"] = "Administrator created. Sign in with it."
            st.rerun()


def require_page(key: str):
    """Guard at the top of every page: signed in and allowed to open page ``key``.

    Returns the :class:`analytics.auth.User`. Refuses (an error box and ``st.stop()``) when no one
    is signed in or the role may not open the page, also when the page file is opened directly.
    """
    user = current_user()
    if user is None:
        st.warning("Please sign in first.", icon=":material/lock:")
        st.stop()
    if not may_open(user, key):
        spec = PAGES_BY_KEY.get(key)
        title = spec.title if spec else key
        st.error(f"Your role ({user.role}) may not open the {title} page.", icon=":material/block:")
        st.stop()
    return user


def user_badge(user) -> None:
    """Who is signed in, and the sign-out button (sidebar)."""
    with st.sidebar:
        who = f"**{user.username}** · {user.role}"
        if getattr(user, "collector_id", None):
            who += f" · portfolio {user.collector_id}"
        st.caption(f"Signed in as {who}")
        if st.button("Sign out", key="_signout", icon=":material/logout:"):
            sign_out(reason="You are signed out.")
            st.rerun()


# ---------------------------------------------------------------------------------------------
# Shared filters (sidebar), kept across pages
# ---------------------------------------------------------------------------------------------
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
    c, i, r = schema.customers, schema.invoices, schema.receipts

    def distinct(col) -> tuple[str, ...]:
        rows = conn.execute(sa.select(col).where(col.is_not(None)).distinct().order_by(col)).scalars()
        return tuple(str(v) for v in rows)

    inv_dates = conn.execute(sa.select(sa.func.min(i.c.invoice_date), sa.func.max(i.c.invoice_date))).one()
    last_receipt = conn.execute(sa.select(sa.func.max(r.c.receipt_date))).scalar()
    currencies = tuple(
        row[0] for row in conn.execute(
            sa.select(i.c.currency, sa.func.count().label("n")).group_by(i.c.currency)
            .order_by(sa.desc("n"), i.c.currency)))
    collectors = tuple(
        (row.id, row.name) for row in conn.execute(
            sa.select(schema.collectors.c.id, schema.collectors.c.name).order_by(schema.collectors.c.name)))
    last = max([d for d in (inv_dates[1], last_receipt) if d is not None], default=None)
    n_customers = conn.execute(sa.select(sa.func.count()).select_from(c)).scalar()
    return LedgerFacts(
        first_date=_as_date(inv_dates[0]), last_date=_as_date(last),
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


def _main_currency(facts: LedgerFacts) -> str | None:
    try:
        from analytics import kpis
        return cached(kpis.main_currency, LedgerFilter())
    except (ImportError, AttributeError):
        return facts.currencies[0] if facts.currencies else None


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
    main_cur = _main_currency(facts)
    is_collector = user is not None and user.role == "collector"

    with st.sidebar:
        st.subheader("Filters")
        _persisted("w_as_of", "f_as_of", default_as_of)
        as_of = st.date_input(
            "As of", key="w_as_of", on_change=_remember, args=("w_as_of", "f_as_of"),
            min_value=facts.first_date or dt.date(1990, 1, 1), max_value=max(today, default_as_of),
            help="Every figure is reconstructed as it stood at the end of this day.")
        st.session_state["f_as_of"] = as_of
        flt_kwargs: dict[str, tuple[str, ...]] = {}

        if facts.business_units:
            _persisted("w_bu", "f_bu", [])
            _drop_unknown("w_bu", "f_bu", facts.business_units)
            flt_kwargs["business_units"] = tuple(st.multiselect(
                "Business unit", facts.business_units, key="w_bu", on_change=_remember, args=("w_bu", "f_bu"),
                placeholder="All business units"))
        if facts.regions:
            _persisted("w_region", "f_region", [])
            _drop_unknown("w_region", "f_region", facts.regions)
            flt_kwargs["regions"] = tuple(st.multiselect(
                "Region", facts.regions, key="w_region", on_change=_remember, args=("w_region", "f_region"),
                placeholder="All regions"))
        if facts.currencies:
            _persisted("w_currency", "f_currency", main_cur or facts.currencies[0])
            if st.session_state["w_currency"] not in facts.currencies:
                st.session_state["w_currency"] = st.session_state["f_currency"] = main_cur or facts.currencies[0]
            cur = st.selectbox(
                "Currency", facts.currencies, key="w_currency", on_change=_remember,
                args=("w_currency", "f_currency"),
                help="Amounts are never converted: one currency at a time.")
            flt_kwargs["currencies"] = (cur,)
        if facts.collectors and show_collector and not is_collector:
            names = dict(facts.collectors)
            _persisted("w_collector", "f_collector", [])
            _drop_unknown("w_collector", "f_collector", tuple(names))
            flt_kwargs["collectors"] = tuple(st.multiselect(
                "Collector", list(names), key="w_collector", on_change=_remember,
                args=("w_collector", "f_collector"), format_func=lambda cid: names.get(cid, cid),
                placeholder="All collectors"))
        elif is_collector:
            st.caption(f"Portfolio: {dict(facts.collectors).get(user.collector_id, user.collector_id)}")

    flt = LedgerFilter(**flt_kwargs)
    if user is not None:
        flt = auth.scope_filter(user, flt)
    return as_of, flt


def _drop_unknown(widget_key: str, store_key: str, options: Iterable[str]) -> None:
    """Forget kept values the ledger no longer has (e.g. after loading another ledger)."""
    options = set(options)
    value = st.session_state.get(widget_key) or []
    kept = [v for v in value if v in options]
    if kept != list(value):
        st.session_state[widget_key] = st.session_state[store_key] = kept


def filter_caption(as_of: dt.date, flt: LedgerFilter) -> str:
    parts = [f"As of {as_of:%d %b %Y}"]
    if flt.currencies:
        parts.append(", ".join(flt.currencies))
    for label, values in (("BU", flt.business_units), ("region", flt.regions), ("collector", flt.collectors)):
        if values:
            parts.append(f"{label}: {', '.join(values)}")
    return " · ".join(parts)


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------
DASH = "—"


def money(units, currency: str | None = None, decimals: int = 0) -> str:
    """Money in currency units with thousands separators: ``money(1234567.5, "USD") == "USD 1,234,568"``."""
    if is_missing(units):
        return DASH
    text = f"{float(units):,.{decimals}f}"
    if text.startswith("-"):
        text = "−" + text[1:]
    return f"{currency} {text}" if currency else text


def cents(value, currency: str | None = None, decimals: int = 0) -> str:
    """Money given in integer cents: ``cents(123456789, "EUR") == "EUR 1,234,568"``."""
    if is_missing(value):
        return DASH
    return money(int(value) / 100, currency, decimals)


def num(value, decimals: int = 1) -> str:
    """A number with thousands separators, or a dash when missing."""
    if is_missing(value):
        return DASH
    return f"{float(value):,.{decimals}f}"


def days(value, decimals: int = 1) -> str:
    if is_missing(value):
        return DASH
    return f"{float(value):,.{decimals}f} days"


def pct(value, decimals: int = 1, ratio: bool = False) -> str:
    """A percentage: ``pct(82.13) == "82.1%"``; ``pct(0.8213, ratio=True) == "82.1%"``."""
    if is_missing(value):
        return DASH
    v = float(value) * (100 if ratio else 1)
    return f"{v:,.{decimals}f}%"


def delta(current, previous, *, kind: str = "number") -> str | None:
    """Change from ``previous`` to ``current`` as text for ``st.metric(delta=...)``; None when undefined.

    ``kind``: ``money`` (units), ``pct`` (percentage points), ``days`` or ``number``.
    """
    if is_missing(current) or is_missing(previous):
        return None
    diff = float(current) - float(previous)
    if kind == "money":
        return ("+" if diff >= 0 else "-") + f"{abs(diff):,.0f}"
    if kind == "pct":
        return f"{diff:+.1f} pp"
    if kind == "days":
        return f"{diff:+.1f} days"
    return f"{diff:+,.2f}"


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


# ---------------------------------------------------------------------------------------------
# Tables and downloads
# ---------------------------------------------------------------------------------------------
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


def page_title(title: str, as_of: dt.date | None = None, flt: LedgerFilter | None = None) -> None:
    st.title(title)
    if as_of is not None:
        st.caption(filter_caption(as_of, flt or LedgerFilter()))


# ---------------------------------------------------------------------------------------------
# Forms: amounts and one-shot messages after a write
# ---------------------------------------------------------------------------------------------
def to_cents(units) -> int:
    """Currency units typed by a person -> integer cents, rounded half up (``12.345 -> 1235``)."""
    from decimal import ROUND_HALF_UP, Decimal

    return int((Decimal(str(units)) * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def flash(message: str, kind: str = "success") -> None:
    """Keep a message for the next run (shown by :func:`show_flash`), e.g. before ``st.rerun()``."""
    st.session_state["_flash"] = (kind, message)


def show_flash() -> None:
    item = st.session_state.pop("_flash", None)
    if item:
        kind, message = item
        getattr(st, kind, st.success)(message)


def write_action(fn: Callable, *args, success: str, **kwargs) -> bool:
    """Run a workflow write; on success keep ``success`` (``{result}`` is the return value) for the
    next run and rerun, so every table shows the new data. A :class:`UserError` (validation,
    permission) is shown in an error box and the form stays as typed.
    """
    ok, result = attempt(fn, *args, **kwargs)
    if not ok:
        return False
    flash(success.format(result=result))
    st.rerun()
    return True


def is_missing(value) -> bool:
    """True for None, NaN, NaT and pandas.NA."""
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def customer_link(customer_id: str, name: str | None = None) -> None:
    """A link to the customer's Customer 360 page (only when the signed-in role may open it)."""
    user = st.session_state.get(USER_KEY)
    spec = PAGES_BY_KEY["customer_360"]
    if not may_open(user, spec.key) or not spec.path.is_file():
        return
    st.page_link(str(spec.path), label=f"Open {name or customer_id} in Customer 360", icon=spec.icon,
                 query_params={"customer": customer_id})


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
