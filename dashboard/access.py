"""Who may see what: the page registry, role checks, sign-in, sign-out, idle and absolute expiry.

Sign-in goes through :func:`analytics.auth.sign_in` (failures counted per user name in the database,
growing delay, 15-minute lockout, every attempt audited). A demo password must be changed before the
session starts unless ``AR_DEMO_MODE=1``. A session ends after ``AR_IDLE_MINUTES`` (30) idle minutes
and, whatever the activity, 12 hours after sign-in. The first administrator of an empty database is
created here only with the one-time token the server writes to its log and to
``data/first_admin_token``, from a browser on the server itself.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from pathlib import Path

import sqlalchemy as sa
import streamlit as st

from analytics import db, schema
from dashboard.feedback import attempt, run_safely
from dashboard.session import get_engine, read_only

ROOT = Path(__file__).resolve().parent.parent
PAGES_DIR = ROOT / "pages"
IDLE_MINUTES = float(os.environ.get("AR_IDLE_MINUTES", "30"))
MAX_SESSION_HOURS = 12

USER_KEY = "user"
LAST_SEEN_KEY = "_last_seen"
SIGNED_IN_KEY = "_signed_in_at"
CHANGE_FOR_KEY = "_signin_change_for"
#: The query parameter holding the signed session token (:func:`analytics.auth.issue_session_token`):
#: it is what lets a browser refresh, or a second tab opened from this one, resume the session.
SESSION_PARAM = "session"
TOKEN_KEY = "_session_token"
TOKEN_RENEW_SECONDS = 60

#: The page each role lands on after sign-in (when no other page was asked for).
LANDING = {"collector": "worklist", "finance": "cash_forecast", "manager": "overview", "admin": "overview"}


def landing_page(user) -> str:
    """The key of the page ``user`` lands on: collectors their Worklist, finance the Cash forecast,
    managers and admins the Overview; the first allowed page when that one is not open to them.

    Example
    -------
    >>> from analytics.auth import User
    >>> landing_page(User("col01", "collector", "COL01"))
    'worklist'
    """
    keys = [p.key for p in allowed_pages(user)]
    wanted = LANDING.get(getattr(user, "role", None))
    return wanted if wanted in keys else (keys[0] if keys else "")


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



def allowed_pages(user) -> list[PageSpec]:
    """The pages ``user`` may open whose file exists (pages owned by other modules may not yet)."""
    return [p for p in PAGES if may_open(user, p.key) and p.path.is_file()]


# ---------------------------------------------------------------------------------------------
# Sign-in, sign-out, idle expiry
# ---------------------------------------------------------------------------------------------
def current_user():
    """The signed-in :class:`analytics.auth.User`, or None (also None once the session idled out or
    is older than :data:`MAX_SESSION_HOURS`)."""
    user = st.session_state.get(USER_KEY)
    if user is None:
        user = _resume_from_token()
    if user is None:
        return None
    now = time.time()
    last = st.session_state.get(LAST_SEEN_KEY)
    started = st.session_state.setdefault(SIGNED_IN_KEY, now)
    if now - started > MAX_SESSION_HOURS * 3600:
        sign_out(reason=f"You were signed out: a session lasts at most {MAX_SESSION_HOURS} hours. Sign in again.")
        return None
    if last is not None and IDLE_MINUTES > 0 and now - last > IDLE_MINUTES * 60:
        sign_out(reason=f"You were signed out after {IDLE_MINUTES:g} minutes without activity.")
        return None
    st.session_state[LAST_SEEN_KEY] = now
    _keep_token(user, now)
    return user


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).replace(tzinfo=None)


def _browser() -> str:
    """The browser's User-Agent: a session token resumes only in the browser it was issued to."""
    try:
        return str(st.context.headers.get("User-Agent") or "")
    except Exception:  # no request context (AppTest, bare mode)
        return ""


def _resume_from_token():
    """A new browser session (a refresh, a new tab) carrying a valid token in its URL: signed in again,
    with the original sign-in time (the 12-hour limit counts from there)."""
    from analytics import auth

    token = st.query_params.get(SESSION_PARAM)
    if not token or read_only():
        return None
    user = run_safely(auth.resume_session, get_engine(), token, idle_minutes=IDLE_MINUTES, binding=_browser())
    if user is None:
        del st.query_params[SESSION_PARAM]
        return None
    body = auth.read_session_token(token)
    st.session_state[USER_KEY] = user
    st.session_state[SIGNED_IN_KEY] = float(body["iat"])
    st.session_state[LAST_SEEN_KEY] = time.time()
    st.session_state[TOKEN_KEY] = token
    return user


def _keep_token(user, now: float) -> None:
    """Keep the session token in the URL (page changes drop query parameters) and renew its
    "last seen" once a minute, so a refresh within the idle limit resumes the session."""
    from analytics import auth

    if read_only():
        return
    token = st.session_state.get(TOKEN_KEY)
    body = auth.read_session_token(token) if token else None
    if body is None or now - float(body["seen"]) > TOKEN_RENEW_SECONDS:
        started = st.session_state.get(SIGNED_IN_KEY, now)
        token = run_safely(auth.issue_session_token, get_engine(), user, _utc(started), _utc(now),
                           body["sid"] if body else None, binding=_browser())
        if token is None:
            return
        st.session_state[TOKEN_KEY] = token
    if st.query_params.get(SESSION_PARAM) != token:
        st.query_params[SESSION_PARAM] = token


def _start_session(user) -> None:
    now = time.time()
    st.session_state[USER_KEY] = user
    st.session_state[LAST_SEEN_KEY] = now
    st.session_state[SIGNED_IN_KEY] = now
    st.session_state.pop(TOKEN_KEY, None)
    _keep_token(user, now)


def sign_out(reason: str | None = None) -> None:
    """End the session: its token is revoked (a refresh or an old link no longer signs in) and the
    session state is cleared."""
    from analytics import auth

    token = st.session_state.get(TOKEN_KEY) or st.query_params.get(SESSION_PARAM)
    if token and not read_only():
        run_safely(auth.revoke_session, get_engine(), token)
    if SESSION_PARAM in st.query_params:
        del st.query_params[SESSION_PARAM]
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
    if st.session_state.get(CHANGE_FOR_KEY):
        _change_password_form(engine, st.session_state[CHANGE_FOR_KEY])
        return
    with st.form("signin", border=True):
        st.subheader("Sign in")
        username = st.text_input("Username", key="_signin_user")
        password = st.text_input("Password", type="password", key="_signin_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    st.caption("Demo database: the demo accounts are listed in the README (`python -m analytics users demo`).")
    if submitted:
        result = run_safely(auth.sign_in, engine, username.strip(), password)
        if result is None:
            return
        if result.status == "ok":
            _start_session(result.user)
            st.rerun()
        elif result.status == "must_change_password":
            st.session_state[CHANGE_FOR_KEY] = result.user.username
            st.rerun()
        else:
            st.error(result.message, icon=":material/lock:")


def _change_password_form(engine: sa.Engine, username: str) -> None:
    """First sign-in with a documented demo password (outside demo mode): a new password first."""
    from analytics import auth

    st.warning(f"**{username}** still has its documented demo password. Choose a new password to continue.",
               icon=":material/key:")
    with st.form("change_password", border=True):
        current = st.text_input("Current password", type="password", key="_signin_current_pw")
        new = st.text_input("New password (at least 8 characters)", type="password", key="_signin_new_pw1")
        again = st.text_input("Repeat the new password", type="password", key="_signin_new_pw2")
        submitted = st.form_submit_button("Change password and sign in", type="primary")
    if st.button("Cancel", key="_signin_change_cancel"):
        st.session_state.pop(CHANGE_FOR_KEY, None)
        st.rerun()
    if submitted:
        if new != again:
            st.error("The two new passwords differ.")
            return
        ok, _ = attempt(auth.change_own_password, engine, username, current, new)
        if not ok:
            return
        user = auth.get_user(engine, username)
        st.session_state.pop(CHANGE_FOR_KEY, None)
        _start_session(user)
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

    token_path = auth.first_admin_token_path()
    run_safely(auth.issue_first_admin_token, engine)
    address = getattr(st.context, "ip_address", None)
    if not isinstance(address, str) or not address:  # unknown (no websocket, e.g. AppTest): the token decides
        address = None
    if address is not None and not auth.is_local_address(address):
        st.warning("This database has no users yet. The first administrator is created on the server: "
                   "`python -m analytics users add NAME --role admin`, or from a browser on the server "
                   "itself.", icon=":material/person_add:")
        return
    st.warning("This database has no users yet. Create the first administrator with the one-time token "
               f"printed in the server log (also in `data/{token_path.name}`), or run "
               "`python -m analytics users add NAME --role admin`.", icon=":material/person_add:")
    with st.form("first_admin"):
        token = st.text_input("One-time token", type="password", key="_signin_token")
        username = st.text_input("Administrator username", key="_signin_new_user")
        password = st.text_input("Password (at least 8 characters)", type="password", key="_signin_new_pw")
        submitted = st.form_submit_button("Create administrator", type="primary")
    if submitted:
        if _has_users(engine):  # someone else was quicker
            st.rerun()
        if len(password) < 8:
            st.error("The password needs at least 8 characters.")
            return
        run_safely(auth.create_first_admin, engine, username.strip(), password, token, address)
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



def customer_link(customer_id: str, name: str | None = None) -> None:
    """A link to the customer's Customer 360 page (only when the signed-in role may open it)."""
    user = st.session_state.get(USER_KEY)
    spec = PAGES_BY_KEY["customer_360"]
    if not may_open(user, spec.key) or not spec.path.is_file():
        return
    st.page_link(str(spec.path), label=f"Open {name or customer_id} in Customer 360", icon=spec.icon,
                 query_params={"customer": customer_id})


