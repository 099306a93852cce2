"""Users, roles and permissions, checked on the server side.

Passwords are hashed with Argon2id (``argon2-cffi`` defaults); only the hash is stored in the
``users`` table. Every page and every write asks :func:`require` before doing anything, and every
query for a collector goes through :func:`scope_filter`, so a collector sees and changes only
their own portfolio whatever the user interface shows.

Roles and what they may do (:data:`PERMISSIONS`):

=============  ===============================================================================
admin          everything, including ``import`` (load data) and ``manage_users``
manager        view everything, record work on any account, approve write-offs, forecast, provision
finance        view everything read-only: KPIs, forecast, provision, audit trail; cash application
collector      view and record work only on the customers assigned to their collector id
=============  ===============================================================================

Demo accounts (:func:`create_demo_users`) use the documented password ``<username>-demo``,
e.g. ``admin`` / ``admin-demo``, ``c01`` / ``c01-demo``. They are for the demo database only:
outside demo mode (``AR_DEMO_MODE=1``, set by ``make run``) such a password must be changed at the
first sign-in (:func:`sign_in` answers ``must_change_password``).

Guessing passwords (:func:`sign_in`): failures are counted per user name typed, known or not, in the
database (``login_throttle``), so a new browser session does not reset them. After the 3rd failure in
a row the next try must wait 1 s, after the 4th 2 s; the 5th locks the name for 15 minutes
(:data:`LOCKOUT_FAILURES`, :data:`LOCKOUT_MINUTES`). An unknown name costs the same Argon2 check and
the same writes, and locks out the same way, so nothing tells which names exist. Every sign-in,
failed, refused or successful, is in the audit log.

Example
-------
>>> from analytics import db
>>> engine = db.connect("sqlite://")
>>> _ = add_user(engine, "alice", "correct-horse", "finance")
>>> authenticate(engine, "alice", "correct-horse")
User(username='alice', role='finance', collector_id=None)
>>> authenticate(engine, "alice", "wrong") is None
True
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import sys
from pathlib import Path

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from analytics import schema
from analytics.audit import append_audit, run_write
from analytics.errors import UserError
from analytics.ledger import LedgerFilter

ROLES = schema.ROLES

#: Every action the product checks. Pages and workflow functions name one of these.
ACTIONS = frozenset({
    "view",              # see the dashboard at all (own portfolio for collectors)
    "view_all",          # see every portfolio
    "view_kpis",
    "view_worklist",
    "view_risk",
    "view_forecast",
    "view_provision",
    "view_audit",
    "write_activity",    # log calls, e-mails, letters, notes
    "record_promise",
    "manage_disputes",   # open and resolve disputes
    "propose_writeoff",
    "approve_writeoff",
    "draft_letters",
    "cash_application",  # accept / reject cash-application proposals
    "export",
    "import",            # load or generate ledger data
    "manage_users",
})

_WORK = {"write_activity", "record_promise", "manage_disputes", "propose_writeoff", "draft_letters"}

#: Role -> allowed actions.
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": ACTIONS,
    "manager": frozenset({"view", "view_all", "view_kpis", "view_worklist", "view_risk", "view_forecast",
                          "view_provision", "view_audit", "approve_writeoff", "export", "cash_application"} | _WORK),
    "finance": frozenset({"view", "view_all", "view_kpis", "view_worklist", "view_risk", "view_forecast",
                          "view_provision", "view_audit", "export", "cash_application"}),
    "collector": frozenset({"view", "view_kpis", "view_worklist", "view_risk"} | _WORK),
}

MIN_PASSWORD_LENGTH = 8
_COMMON_PASSWORDS = frozenset({"password", "password1", "12345678", "123456789", "1234567890", "qwertyui",
                               "qwertyuiop", "iloveyou", "letmein1", "admin123", "welcome1", "changeme"})
_USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
DEMO_PASSWORD_SUFFIX = "-demo"

_HASHER = PasswordHasher()  # argon2id with the library's default cost
_DUMMY_HASH: str | None = None


class PermissionDenied(UserError):
    """The signed-in user may not do this (wrong role, or another collector's customer)."""


@dataclasses.dataclass(frozen=True)
class User:
    """A signed-in user. ``collector_id`` is set for collectors only."""

    username: str
    role: str
    collector_id: str | None = None


@dataclasses.dataclass(frozen=True)
class Session:
    """A dashboard session: who, when it started and when the user was last active (UTC)."""

    user: User
    started_at: dt.datetime
    last_seen: dt.datetime

    def touch(self, now: dt.datetime) -> "Session":
        """The same session, seen at ``now``."""
        return dataclasses.replace(self, last_seen=now)


def is_expired(session: Session, now: dt.datetime, idle_minutes: int = 30, max_hours: int = 12) -> bool:
    """True when the session has been idle too long or is simply too old.

    Parameters
    ----------
    session : Session
    now : datetime.datetime
        Current time, same time zone convention as the session's timestamps.
    idle_minutes : int, default 30
        Expire after this long without activity.
    max_hours : int, default 12
        Expire this long after sign-in whatever the activity.

    Returns
    -------
    bool

    Example
    -------
    >>> t0 = dt.datetime(2024, 1, 1, 9)
    >>> s = Session(User("a", "admin"), t0, t0)
    >>> is_expired(s, t0 + dt.timedelta(minutes=29)), is_expired(s, t0 + dt.timedelta(minutes=31))
    (False, True)
    """
    return (now - session.last_seen > dt.timedelta(minutes=idle_minutes)
            or now - session.started_at > dt.timedelta(hours=max_hours))


# ------------------------------------------------------------------------------------------------
# Passwords
# ------------------------------------------------------------------------------------------------
def hash_password(password: str) -> str:
    """Argon2id hash of ``password`` (salted; two calls give different hashes).

    Example
    -------
    >>> h = hash_password("s3cret-pass")
    >>> h.startswith("$argon2id$") and verify_password(h, "s3cret-pass")
    True
    """
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; False on mismatch or a malformed hash.

    Example
    -------
    >>> verify_password(hash_password("s3cret-pass"), "other")
    False
    """
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_password_strength(password: str, username: str = "") -> None:
    """Raise :class:`UserError` when ``password`` is empty, shorter than 8 characters, equal to the
    user name or a well-known password.

    Example
    -------
    >>> check_password_strength("long-enough")
    """
    if not password:
        raise UserError("password: must not be empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password: must be at least {MIN_PASSWORD_LENGTH} characters")
    if username and password.lower() == username.lower():
        raise UserError("password: must not be the user name")
    if password.lower() in _COMMON_PASSWORDS or len(set(password)) < 3:
        raise UserError("password: too easy to guess")


# ------------------------------------------------------------------------------------------------
# Users
# ------------------------------------------------------------------------------------------------
def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def add_user(engine: sa.Engine, username: str, password: str, role: str, collector_id: str | None = None,
             actor: str = "system", must_change_password: bool = False) -> User:
    """Create a user (one transaction, with an audit row).

    Parameters
    ----------
    engine : sqlalchemy.Engine
    username : str
        1-64 characters: letters, digits, ``_ . @ -``.
    password : str
        At least 8 characters, not the user name, not a well-known password.
    role : str
        One of ``admin``, ``manager``, ``collector``, ``finance``.
    collector_id : str, optional
        Required for (and only for) collectors; must exist in ``collectors``.
    actor : str, default "system"
        Who creates the user (recorded in the audit log).
    must_change_password : bool, default False
        The password is known to others (demo accounts): it must be changed at the first sign-in
        outside demo mode.

    Returns
    -------
    User

    Raises
    ------
    UserError
        Unknown role, missing/unknown collector, weak password, bad or duplicate user name.

    Example
    -------
    >>> from analytics import db
    >>> add_user(db.connect("sqlite://"), "boss", "a-long-password", "manager")
    User(username='boss', role='manager', collector_id=None)
    """
    username, password_hash = _checked_new_user(engine, username, password, role, collector_id)

    def write(conn):
        _insert_user(conn, username, password_hash, role, collector_id, actor, "add_user", must_change_password)

    run_write(engine, write)
    return User(username, role, collector_id)


def _checked_new_user(engine, username, password, role, collector_id) -> tuple[str, str]:
    """Validate a new account's fields (no database access but the read-only check); (name, hash)."""
    username = (username or "").strip()
    if not _USERNAME_RE.match(username):
        raise UserError(f"username: {username!r} must be 1-64 letters, digits or _ . @ -")
    if role not in ROLES:
        raise UserError(f"role: unknown role {role!r} (one of {', '.join(ROLES)})")
    if role == "collector" and not collector_id:
        raise UserError("collector_id: a collector user needs --collector (the collector id of their portfolio)")
    if role != "collector" and collector_id:
        raise UserError(f"collector_id: only collector users have a portfolio (role is {role!r})")
    from analytics.db import require_writable

    require_writable(engine, "add users")
    check_password_strength(password, username)
    return username, hash_password(password)


def _insert_user(conn: sa.Connection, username: str, password_hash: str, role: str, collector_id: str | None,
                 actor: str, action: str, must_change_password: bool = False) -> None:
    t = schema.users
    if collector_id is not None:
        exists = conn.execute(sa.select(schema.collectors.c.id).where(schema.collectors.c.id == collector_id))
        if exists.first() is None:
            raise UserError(f"collector_id: unknown collector {collector_id!r}")
    if conn.execute(sa.select(t.c.username).where(t.c.username == username)).first() is not None:
        raise UserError(f"username: user {username!r} already exists")
    now = _utcnow()
    conn.execute(t.insert().values(username=username, password_hash=password_hash, role=role,
                                   collector_id=collector_id, created_at=now,
                                   must_change_password=bool(must_change_password)))
    append_audit(conn, actor, action, "users", username, None,
                 {"username": username, "role": role, "collector_id": collector_id,
                  "change_at_first_sign_in": bool(must_change_password)}, at=now)


def set_password(engine: sa.Engine, username: str, password: str, actor: str = "system") -> None:
    """Replace a user's password (strength-checked; audit row without the hash).

    A documented demo password (``<username>-demo``) is refused. Clears ``must_change_password``.

    Raises
    ------
    UserError
        Unknown user, weak password or the demo password.

    Example
    -------
    >>> from analytics import db
    >>> engine = db.connect("sqlite://")
    >>> _ = add_user(engine, "ann", "first-password", "finance")
    >>> set_password(engine, "ann", "second-password")
    """
    from analytics.db import require_writable

    require_writable(engine, "change passwords")
    check_password_strength(password, username)
    if password == demo_password(username):
        raise UserError("password: the documented demo password cannot be used; choose another")
    password_hash = hash_password(password)
    t = schema.users

    def write(conn):
        updated = conn.execute(t.update().where(t.c.username == username)
                               .values(password_hash=password_hash, must_change_password=False))
        if not updated.rowcount:
            raise UserError(f"username: no user {username!r}")
        append_audit(conn, actor, "set_password", "users", username, None, {"password": "changed"})

    run_write(engine, write)


def change_own_password(engine: sa.Engine, username: str, current: str, new: str) -> None:
    """A user replaces their own password (the demo-password change at first sign-in).

    Parameters
    ----------
    engine : sqlalchemy.Engine
    username : str
    current : str
        The password in use (checked; a wrong one counts as a failed sign-in).
    new : str
        Strength-checked, different from ``current`` and from the demo password.

    Raises
    ------
    UserError
        Wrong current password, weak or unchanged new password.

    Example
    -------
    >>> change_own_password(engine, "admin", "admin-demo", "a-better-secret")  # doctest: +SKIP
    """
    if new == current:
        raise UserError("password: the new password must differ from the current one")
    result = sign_in(engine, username, current, _for_change=True)
    if result.user is None:
        raise UserError(result.message)
    set_password(engine, username, new, actor=username)


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password("dummy-password-for-timing")
    return _DUMMY_HASH


#: Failures in a row that lock a user name; how long the lock lasts.
LOCKOUT_FAILURES = 5
LOCKOUT_MINUTES = 15
#: ``AR_DEMO_MODE=1``: documented demo passwords may be used as they are (``make run`` sets it).
DEMO_MODE_ENV = "AR_DEMO_MODE"


def demo_mode() -> bool:
    """True when ``$AR_DEMO_MODE`` is ``1``/``true``/``yes`` (demo passwords need not be changed).

    Example
    -------
    >>> isinstance(demo_mode(), bool)
    True
    """
    return os.environ.get(DEMO_MODE_ENV, "").strip().lower() in ("1", "true", "yes")


def retry_delay(failures: int) -> float:
    """Seconds a user name must wait after its last failure before the next try.

    0 after 1-2 failures, then 1 s, 2 s; at :data:`LOCKOUT_FAILURES` the name is locked instead.

    Example
    -------
    >>> [retry_delay(n) for n in range(5)]
    [0.0, 0.0, 0.0, 1.0, 2.0]
    """
    return 0.0 if failures < 3 else float(2 ** (failures - 3))


@dataclasses.dataclass(frozen=True)
class SignInResult:
    """Outcome of :func:`sign_in`.

    ``status``: ``ok``; ``must_change_password`` (right password, a demo one outside demo mode:
    ``user`` is set but must not be signed in before :func:`change_own_password`); ``wrong`` (unknown
    name or wrong password, the same answer); ``wait`` (too soon after a failure; ``retry_after``
    seconds); ``locked`` (too many failures; ``retry_after`` seconds).
    """

    user: User | None
    status: str
    retry_after: float = 0.0

    @property
    def message(self) -> str:
        """The sentence to show the person signing in (never says whether the name exists)."""
        if self.status == "wrong":
            return "Unknown username or wrong password."
        if self.status == "wait":
            return f"Too many failed sign-ins: wait {max(1, round(self.retry_after))} s and try again."
        if self.status == "locked":
            minutes = max(1, -(-int(self.retry_after) // 60))
            return (f"Too many failed sign-ins: this account is locked for {minutes} more minute"
                    f"{'s' if minutes != 1 else ''}.")
        if self.status == "must_change_password":
            return "This account still has its documented demo password: choose a new one to continue."
        return "Signed in."


def _throttle_key(username: str) -> str:
    return (username or "").strip()[:64] or "(empty)"


def _claim_attempt(conn: sa.Connection, key: str, now: dt.datetime) -> tuple[str, float, int]:
    """Count an attempt for ``key`` before the password is checked (so parallel guesses are counted).

    Returns (``try``/``wait``/``locked``, seconds to wait, failures including this one).
    """
    t = schema.login_throttle
    touched = conn.execute(t.update().where(t.c.username == key).values(failures=t.c.failures)).rowcount
    if not touched:
        conn.execute(t.insert().values(username=key, failures=0))
    failures, last, locked = conn.execute(sa.select(t.c.failures, t.c.last_failure_at, t.c.locked_until)
                                          .where(t.c.username == key)).one()
    if locked is not None and locked > now:
        append_audit(conn, key, "signin_refused", "users", key, None, {"reason": "locked",
                                                                        "locked_until": locked}, at=now)
        return "locked", (locked - now).total_seconds(), failures
    if locked is not None:  # the lock ran out: start counting again
        failures = 0
    wait = retry_delay(failures) - ((now - last).total_seconds() if last is not None else 1e9)
    if wait > 0:
        append_audit(conn, key, "signin_refused", "users", key, None, {"reason": "too soon", "failures": failures},
                     at=now)
        return "wait", wait, failures
    failures += 1
    lock = now + dt.timedelta(minutes=LOCKOUT_MINUTES) if failures >= LOCKOUT_FAILURES else None
    conn.execute(t.update().where(t.c.username == key).values(failures=failures, last_failure_at=now,
                                                              locked_until=lock))
    return "try", 0.0, failures


def sign_in(engine: sa.Engine, username: str, password: str, now: dt.datetime | None = None,
            _for_change: bool = False) -> SignInResult:
    """Check a sign-in, counting failures per user name in the database, and audit it.

    Every try is counted before the password is checked (one transaction), so guesses sent in
    parallel from many sessions are all counted; a right password resets the count. See the module
    docstring for the delays and the lockout. An unknown user name costs one Argon2 verification and
    the same writes as a known one. A hash made with older parameters is upgraded on success. On a
    read-only database nothing can be written: the password is checked without counting or auditing.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    username, password : str
    now : datetime.datetime, optional
        UTC time (tests); default now.

    Returns
    -------
    SignInResult

    Example
    -------
    >>> from analytics import db
    >>> sign_in(db.connect("sqlite://"), "nobody", "whatever").status
    'wrong'
    """
    from analytics.db import is_readonly

    name = (username or "").strip()
    now = now or _utcnow()
    if is_readonly(engine):
        row = _user_row(engine, name)
        ok = row is not None and bool(password) and verify_password(row.password_hash, password)
        if row is None:
            verify_password(_dummy_hash(), password or "")
        return SignInResult(User(row.username, row.role, row.collector_id), "ok") if ok else SignInResult(None, "wrong")
    key = _throttle_key(name)
    state, wait, failures = run_write(engine, lambda conn: _claim_attempt(conn, key, now),
                                      retry_duplicates=True)
    if state != "try":
        return SignInResult(None, state, wait)
    row = _user_row(engine, name)
    if row is None:
        verify_password(_dummy_hash(), password or "")
        ok = False
    else:
        ok = bool(password) and verify_password(row.password_hash, password)
    if not ok:
        locked = failures >= LOCKOUT_FAILURES
        run_write(engine, lambda conn: append_audit(
            conn, key, "signin_failed", "users", key, None,
            {"failures": failures, "locked_minutes": LOCKOUT_MINUTES if locked else 0}, at=now))
        return SignInResult(None, "locked" if locked else "wrong", LOCKOUT_MINUTES * 60.0 if locked else 0.0)
    must_change = (bool(row.must_change_password) or password == demo_password(row.username)) and not demo_mode()
    t, lt = schema.users, schema.login_throttle

    def success(conn):
        conn.execute(lt.update().where(lt.c.username == key).values(failures=0, last_failure_at=None,
                                                                    locked_until=None))
        if _HASHER.check_needs_rehash(row.password_hash):  # upgrade an old hash
            conn.execute(t.update().where(t.c.username == row.username).values(password_hash=hash_password(password)))
        if not _for_change:
            append_audit(conn, row.username, "signin", "users", row.username, None,
                         {"change_required": must_change}, at=now)

    run_write(engine, success)
    user = User(row.username, row.role, row.collector_id)
    return SignInResult(user, "must_change_password" if must_change and not _for_change else "ok")


def unlock(engine: sa.Engine, username: str, actor: str = "system") -> bool:
    """Clear a user name's failed sign-ins and lockout (audited). CLI: ``users unlock NAME``.

    Returns
    -------
    bool
        True when the name had failures recorded.

    Example
    -------
    >>> from analytics import db
    >>> unlock(db.connect("sqlite://"), "nobody")
    False
    """
    from analytics.db import require_writable

    require_writable(engine, "unlock users")
    key, t = _throttle_key(username), schema.login_throttle

    def write(conn):
        row = conn.execute(sa.select(t.c.failures, t.c.locked_until).where(t.c.username == key)).first()
        if row is None or (not row.failures and row.locked_until is None):
            return False
        conn.execute(t.update().where(t.c.username == key).values(failures=0, last_failure_at=None,
                                                                   locked_until=None))
        append_audit(conn, actor, "unlock_user", "users", key, {"failures": row.failures,
                                                                "locked_until": row.locked_until}, None)
        return True

    return run_write(engine, write)


def _user_row(engine: sa.Engine, name: str):
    t = schema.users
    with engine.connect() as conn:
        return conn.execute(sa.select(t).where(t.c.username == name)).first()


def authenticate(engine: sa.Engine, username: str, password: str) -> User | None:
    """The user when ``username``/``password`` are right (and the name is not locked), else None.

    :func:`sign_in` without the details: failures are counted and audited the same way. A user who
    must still change a demo password is returned (the dashboard asks for the change).

    Parameters
    ----------
    engine : sqlalchemy.Engine
    username, password : str

    Returns
    -------
    User or None

    Example
    -------
    >>> from analytics import db
    >>> authenticate(db.connect("sqlite://"), "nobody", "whatever") is None
    True
    """
    return sign_in(engine, username, password).user


# ------------------------------------------------------------------------------------------------
# The first administrator of an empty database
# ------------------------------------------------------------------------------------------------
FIRST_ADMIN_TOKEN_ENV = "AR_FIRST_ADMIN_TOKEN_FILE"
_LOG = logging.getLogger("analytics.auth")


def _data_file(env_name: str, file_name: str) -> Path:
    """``$env_name`` if set, else ``data/<file_name>`` in the repository (server-side secrets)."""
    env = os.environ.get(env_name)
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data" / file_name


def first_admin_token_path() -> Path:
    """Where the one-time first-administrator token is kept: ``$AR_FIRST_ADMIN_TOKEN_FILE`` or
    ``data/first_admin_token`` in the repository.

    Example
    -------
    >>> first_admin_token_path().name
    'first_admin_token'
    """
    return _data_file(FIRST_ADMIN_TOKEN_ENV, "first_admin_token")


def issue_first_admin_token(engine: sa.Engine) -> str | None:
    """The one-time token that lets a localhost browser create the first administrator.

    Only while the database has no users: written (mode 0600) to :func:`first_admin_token_path` and
    to the server log (warning) the first time; the same token until it is used. None once there
    are users (a leftover token file is then removed).

    Example
    -------
    >>> token = issue_first_admin_token(engine)  # doctest: +SKIP
    """
    path = first_admin_token_path()
    with engine.connect() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(schema.users)).scalar():
            path.unlink(missing_ok=True)  # the first user came from the CLI: the token is void
            return None
    if path.is_file():
        return path.read_text().strip()
    token = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    _LOG.warning("No users yet. One-time token to create the first administrator from a browser on this "
                 "machine: %s (also in %s)", token, path)
    return token


def is_local_address(address: str | None) -> bool:
    """True for a loopback address (``127.0.0.0/8``, ``::1``).

    Example
    -------
    >>> is_local_address("127.0.0.1"), is_local_address("10.0.0.5")
    (True, False)
    """
    try:
        return ipaddress.ip_address((address or "").strip("[]")).is_loopback
    except ValueError:
        return False


def create_first_admin(engine: sa.Engine, username: str, password: str, token: str,
                       client_address: str | None = None) -> User:
    """Create the first administrator of an empty database from the dashboard.

    Needs the one-time token (:func:`issue_first_admin_token`) and, when the browser's address is
    known, a loopback address. The token is used up. From the command line use ``python -m analytics
    users add NAME --role admin`` instead.

    Raises
    ------
    PermissionDenied
        Not from this machine, wrong or no token, or the database already has users.

    Example
    -------
    >>> create_first_admin(engine, "root", "a-long-secret", token, "127.0.0.1")  # doctest: +SKIP
    User(username='root', role='admin', collector_id=None)
    """
    if client_address is not None and not is_local_address(client_address):
        raise PermissionDenied("the first administrator can only be created from a browser on the server itself, "
                               "or with `python -m analytics users add NAME --role admin`")
    path = first_admin_token_path()
    expected = path.read_text().strip() if path.is_file() else ""
    if not expected or not hmac.compare_digest((token or "").strip().encode(), expected.encode()):
        raise PermissionDenied("wrong one-time token: copy it from the server log or from "
                               f"{path.name} in the data folder")
    username, password_hash = _checked_new_user(engine, username, password, "admin", None)

    def write(conn):
        if conn.execute(sa.select(sa.func.count()).select_from(schema.users)).scalar():
            raise PermissionDenied("this database already has users: sign in instead")
        _insert_user(conn, username, password_hash, "admin", None, username, "create_first_admin")

    run_write(engine, write)
    path.unlink(missing_ok=True)
    return User(username, "admin", None)


# ------------------------------------------------------------------------------------------------
# Dashboard sessions that survive a browser refresh (issue 17)
# ------------------------------------------------------------------------------------------------
SESSION_SECRET_ENV = "AR_SESSION_SECRET_FILE"
SESSION_MAX_HOURS = 12
SESSION_SIGNOUT_ACTION = "signout"


def session_secret_path() -> Path:
    """Where the server's session-signing secret is kept: ``$AR_SESSION_SECRET_FILE`` or
    ``data/session_secret`` (created on first use, readable by its owner only).

    Example
    -------
    >>> session_secret_path().name
    'session_secret'
    """
    return _data_file(SESSION_SECRET_ENV, "session_secret")


def _session_secret() -> bytes:
    path = session_secret_path()
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value)
        return bytes.fromhex(value)


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _session_mac(payload: str, password_hash: str, binding: str = "") -> str:
    # Keyed by the server's secret and the user's password hash: a password change ends every session.
    # ``binding`` (the browser's User-Agent) ties the token to the browser that signed in.
    key = hmac.new(_session_secret(), password_hash.encode(), "sha256").digest()
    return _b64(hmac.new(key, (payload + "\n" + binding).encode(), "sha256").digest())


def issue_session_token(engine: sa.Engine, user: User, started: dt.datetime | None = None,
                        seen: dt.datetime | None = None, session_id: str | None = None,
                        binding: str = "") -> str | None:
    """A signed, expiring token that lets a dashboard session resume after a browser refresh.

    The token names the user, a random session id, when the session started and when it was last
    seen (UTC); it is signed (HMAC-SHA256) with the server's secret (:func:`session_secret_path`) and
    the user's password hash. :func:`resume_session` accepts it until ``SESSION_MAX_HOURS`` (12) after
    sign-in and ``idle_minutes`` after ``seen``, never after :func:`revoke_session` (sign-out) or a
    password change. Nothing is written to the database to issue one.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    user : User
    started, seen : datetime.datetime, optional
        UTC sign-in time and last activity; default now.
    session_id : str, optional
        Keep the id of the session being renewed; default a new random id.
    binding : str, optional
        Something of the browser's that must be the same to resume (the dashboard passes its
        User-Agent), so a link pasted into another browser does not carry the session.

    Returns
    -------
    str or None
        None when the user no longer exists.

    Example
    -------
    >>> from analytics import db
    >>> e = db.connect("sqlite://"); _ = add_user(e, "ann", "long-secret-1", "admin")
    >>> resume_session(e, issue_session_token(e, User("ann", "admin"))).username
    'ann'
    """
    row = _user_row(engine, user.username)
    if row is None:
        return None
    now = _utcnow()
    body = {"u": row.username, "sid": session_id or secrets.token_urlsafe(12),
            "iat": int(((started or now) - dt.datetime(1970, 1, 1)).total_seconds()),
            "seen": int(((seen or now) - dt.datetime(1970, 1, 1)).total_seconds())}
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_session_mac(payload, row.password_hash, binding)}"


def read_session_token(token: str) -> dict | None:
    """The unverified content of a token (``u``, ``sid``, ``iat``, ``seen``), or None when malformed.

    Example
    -------
    >>> read_session_token("garbage") is None
    True
    """
    try:
        payload, _ = str(token).split(".", 1)
        body = json.loads(_unb64(payload))
        return body if isinstance(body, dict) and {"u", "sid", "iat", "seen"} <= set(body) else None
    except (ValueError, TypeError):
        return None


def resume_session(engine: sa.Engine, token: str | None, now: dt.datetime | None = None,
                   idle_minutes: float = 30, binding: str = "") -> User | None:
    """The user a token from :func:`issue_session_token` signs in again, or None.

    None when the token is missing, malformed or forged; older than ``SESSION_MAX_HOURS`` since sign-in
    or idle longer than ``idle_minutes`` (0: no idle limit); revoked by :func:`revoke_session`; when
    the user was removed, changed password, or is locked out by failed sign-ins.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    token : str or None
    now : datetime.datetime, optional
        UTC time (tests); default now.
    idle_minutes : float, default 30
    binding : str, optional
        Must equal the ``binding`` the token was issued with.

    Returns
    -------
    User or None

    Example
    -------
    >>> from analytics import db
    >>> resume_session(db.connect("sqlite://"), "x.y") is None
    True
    """
    body = read_session_token(token) if token else None
    if body is None:
        return None
    now = now or _utcnow()
    try:
        started = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=int(body["iat"]))
        seen = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=int(body["seen"]))
    except (TypeError, ValueError, OverflowError):
        return None
    if now - started > dt.timedelta(hours=SESSION_MAX_HOURS) or started > now + dt.timedelta(minutes=5):
        return None
    if idle_minutes and now - seen > dt.timedelta(minutes=idle_minutes):
        return None
    row = _user_row(engine, str(body["u"]))
    if row is None:
        return None
    payload = str(token).split(".", 1)[0]
    if not hmac.compare_digest(str(token).split(".", 1)[1], _session_mac(payload, row.password_hash, binding)):
        return None
    a, lt = schema.audit_log, schema.login_throttle
    with engine.connect() as conn:
        revoked = conn.execute(sa.select(a.c.id).where(a.c.action == SESSION_SIGNOUT_ACTION,
                                                       a.c.row_id == str(body["sid"])[:64]).limit(1)).first()
        locked = conn.execute(sa.select(lt.c.locked_until).where(lt.c.username == _throttle_key(row.username))
                              ).scalar()
    if revoked is not None or (locked is not None and locked > now):
        return None
    return User(row.username, row.role, row.collector_id)


def revoke_session(engine: sa.Engine, token: str | None) -> bool:
    """End a token's session for good (sign-out): an audited ``signout`` row names its session id, and
    :func:`resume_session` refuses it from then on.

    Parameters
    ----------
    engine : sqlalchemy.Engine
    token : str or None

    Returns
    -------
    bool
        False when there was nothing to revoke (no or malformed token, read-only database).

    Example
    -------
    >>> from analytics import db
    >>> revoke_session(db.connect("sqlite://"), None)
    False
    """
    from analytics.db import is_readonly

    body = read_session_token(token) if token else None
    if body is None or is_readonly(engine):
        return False
    run_write(engine, lambda conn: append_audit(conn, str(body["u"])[:64], SESSION_SIGNOUT_ACTION, "users",
                                                str(body["sid"])[:64], None, None))
    return True


def get_user(engine: sa.Engine, username: str) -> User | None:
    """The user named ``username`` (no password check), or None."""
    t = schema.users
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.c.username, t.c.role, t.c.collector_id).where(t.c.username == username)).first()
    return User(row.username, row.role, row.collector_id) if row else None


def list_users(engine: sa.Engine) -> list[dict]:
    """Every user: username, role, collector_id, created_at (never the hash), sorted by name."""
    t = schema.users
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.username, t.c.role, t.c.collector_id, t.c.created_at)
                            .order_by(t.c.username)).all()
    return [dict(r._mapping) for r in rows]


def demo_password(username: str) -> str:
    """The documented password of a demo account: ``<username>-demo``."""
    return f"{username}{DEMO_PASSWORD_SUFFIX}"


def create_demo_users(engine: sa.Engine) -> list[dict]:
    """Create the demo accounts if missing: ``admin``, ``manager``, ``finance`` and one collector
    user per collector in the ledger (user name = lower-case collector id).

    Idempotent: existing users are left untouched (``created`` is False for them). Passwords are
    :func:`demo_password` (``<username>-demo``) — for demo databases only.

    Parameters
    ----------
    engine : sqlalchemy.Engine

    Returns
    -------
    list of dict
        ``username, password, role, collector_id, created`` per demo account.

    Example
    -------
    >>> from analytics import db
    >>> [u["username"] for u in create_demo_users(db.connect("sqlite://"))]
    ['admin', 'manager', 'finance']
    """
    from analytics.db import require_writable

    require_writable(engine, "create the demo users")
    wanted: list[tuple[str, str, str | None]] = [("admin", "admin", None), ("manager", "manager", None),
                                                 ("finance", "finance", None)]
    with engine.connect() as conn:
        collector_ids = conn.execute(sa.select(schema.collectors.c.id).order_by(schema.collectors.c.id)).scalars().all()
        existing = set(conn.execute(sa.select(schema.users.c.username)).scalars().all())
    for cid in collector_ids:
        name = re.sub(r"[^a-z0-9_.@-]", "_", cid.lower())[:64]
        wanted.append((name, "collector", cid))
    out = []
    for username, role, cid in wanted:
        created = False
        if username not in existing:
            add_user(engine, username, demo_password(username), role, cid, actor="demo", must_change_password=True)
            created = True
        out.append({"username": username, "password": demo_password(username), "role": role,
                    "collector_id": cid, "created": created})
    return out


# ------------------------------------------------------------------------------------------------
# Permissions
# ------------------------------------------------------------------------------------------------
def can(user: User | None, action: str) -> bool:
    """True when ``user``'s role allows ``action`` (portfolio not checked). Useful to show/hide UI.

    Example
    -------
    >>> can(User("f", "finance"), "view_forecast"), can(User("f", "finance"), "import")
    (True, False)
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    return user is not None and action in PERMISSIONS.get(user.role, frozenset())


def require(user: User | None, action: str, customer_id: str | None = None,
            conn: sa.Connection | sa.Engine | None = None) -> None:
    """Raise :class:`PermissionDenied` unless ``user`` may do ``action`` (on ``customer_id``).

    For a collector and a ``customer_id`` the customer must belong to their portfolio
    (``customers.collector_id == user.collector_id``), read through ``conn``.

    Parameters
    ----------
    user : User or None
        None (not signed in) is always denied.
    action : str
        One of :data:`ACTIONS`.
    customer_id : str, optional
    conn : sqlalchemy.Connection or Engine, optional
        Needed when ``customer_id`` is given.

    Raises
    ------
    PermissionDenied
    UserError
        Unknown customer.

    Example
    -------
    >>> require(User("m", "manager"), "approve_writeoff")
    >>> require(User("c", "collector", "C1"), "approve_writeoff")
    Traceback (most recent call last):
    ...
    analytics.auth.PermissionDenied: collector 'c' may not approve_writeoff
    """
    if user is None:
        raise PermissionDenied("sign in first")
    if not can(user, action):
        raise PermissionDenied(f"{user.role} {user.username!r} may not {action}")
    if customer_id is None or user.role != "collector":
        return
    if conn is None:
        raise ValueError("require(..., customer_id=...) needs conn to check the portfolio")
    stmt = sa.select(schema.customers.c.collector_id).where(schema.customers.c.id == customer_id)
    if isinstance(conn, sa.Engine):
        with conn.connect() as c:
            row = c.execute(stmt).first()
    else:
        row = conn.execute(stmt).first()
    if row is None:
        raise UserError(f"customer_id: unknown customer {customer_id!r}")
    if not user.collector_id or row.collector_id != user.collector_id:
        raise PermissionDenied(f"customer {customer_id!r} is not in {user.username!r}'s portfolio")


def scope_filter(user: User | None, flt: LedgerFilter) -> LedgerFilter:
    """The filter ``user`` may actually query: a collector is forced to their own portfolio
    whatever ``flt`` asked; other roles get ``flt`` unchanged.

    Example
    -------
    >>> scope_filter(User("c", "collector", "C1"), LedgerFilter(collectors=("C2",))).collectors
    ('C1',)
    """
    require(user, "view")
    if user.role == "collector":
        return dataclasses.replace(flt, collectors=(user.collector_id or "",))
    return flt


# ------------------------------------------------------------------------------------------------
# CLI: python -m analytics users add|list|demo|passwd
# ------------------------------------------------------------------------------------------------
def _read_password(args) -> str:
    if getattr(args, "password", None) is not None:
        return args.password
    if getattr(args, "password_stdin", False):
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UserError("password: give --password-stdin (reading from a pipe) or run in a terminal")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise UserError("password: the two entries differ")
    return first


def _engine(args) -> sa.Engine:
    from analytics import db

    return db.connect(args.db)


def _run_add(args) -> int:
    password = _read_password(args)
    user = add_user(_engine(args), args.name, password, args.role, args.collector, actor="cli")
    if args.json:
        print(json.dumps(dataclasses.asdict(user)))
    else:
        extra = f" (collector {user.collector_id})" if user.collector_id else ""
        print(f"created {user.role} {user.username}{extra}")
    return 0


def _run_passwd(args) -> int:
    set_password(_engine(args), args.name, _read_password(args), actor="cli")
    if args.json:
        print(json.dumps({"username": args.name, "password": "changed"}))
    else:
        print(f"password of {args.name} changed")
    return 0


def _run_unlock(args) -> int:
    done = unlock(_engine(args), args.name, actor="cli")
    if args.json:
        print(json.dumps({"username": args.name, "unlocked": done}))
    else:
        print(f"{args.name}: failed sign-ins cleared" if done else f"{args.name}: nothing to clear")
    return 0


def _run_list(args) -> int:
    users = list_users(_engine(args))
    if args.json:
        print(json.dumps(users, default=str))
        return 0
    print(f"{'username':<20} {'role':<10} {'collector':<10} created")
    for u in users:
        print(f"{u['username']:<20} {u['role']:<10} {u['collector_id'] or '':<10} {u['created_at']:%Y-%m-%d %H:%M}")
    return 0


def _run_demo(args) -> int:
    users = create_demo_users(_engine(args))
    if args.json:
        print(json.dumps(users))
        return 0
    print(f"{'username':<20} {'password':<22} {'role':<10} {'collector':<10} new")
    for u in users:
        print(f"{u['username']:<20} {u['password']:<22} {u['role']:<10} {u['collector_id'] or '':<10} "
              f"{'yes' if u['created'] else 'no'}")
    return 0


def configure_cli(parser) -> None:
    """Add ``users add|passwd|unlock|list|demo`` to the ``users`` command parser."""
    sub = parser.add_subparsers(dest="users_command", metavar="ACTION")

    def _common(p):
        p.add_argument("--json", action="store_true", help="print JSON")

    add = sub.add_parser("add", help="create a user (password prompted, or read with --password-stdin)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--collector", default=None, help="collector id of a collector user's portfolio")
    for p in (add, passwd := sub.add_parser("passwd", help="change a user's password")):
        g = p.add_mutually_exclusive_group()
        g.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
        g.add_argument("--password", default=None, help="password on the command line (scripts only: visible in ps)")
        _common(p)
    add.set_defaults(run=_run_add)
    passwd.add_argument("name")
    passwd.set_defaults(run=_run_passwd)
    unl = sub.add_parser("unlock", help="clear a user name's failed sign-ins and lockout")
    unl.add_argument("name")
    _common(unl)
    unl.set_defaults(run=_run_unlock)
    lst = sub.add_parser("list", help="list users (never the hashes)")
    _common(lst)
    lst.set_defaults(run=_run_list)
    demo = sub.add_parser("demo", help="create the demo accounts (admin, manager, finance, one per collector)")
    _common(demo)
    demo.set_defaults(run=_run_demo)
