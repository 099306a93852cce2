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
e.g. ``admin`` / ``admin-demo``, ``c01`` / ``c01-demo``. They are for the demo database only.

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
import json
import re
import sys

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from analytics import schema
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
             actor: str = "system") -> User:
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
    password_hash = hash_password(password)
    from analytics.workflow import append_audit

    t = schema.users
    with engine.begin() as conn:
        if collector_id is not None:
            exists = conn.execute(sa.select(schema.collectors.c.id).where(schema.collectors.c.id == collector_id))
            if exists.first() is None:
                raise UserError(f"collector_id: unknown collector {collector_id!r}")
        if conn.execute(sa.select(t.c.username).where(t.c.username == username)).first() is not None:
            raise UserError(f"username: user {username!r} already exists")
        now = _utcnow()
        conn.execute(t.insert().values(username=username, password_hash=password_hash, role=role,
                                       collector_id=collector_id, created_at=now))
        append_audit(conn, actor, "add_user", "users", username, None,
                     {"username": username, "role": role, "collector_id": collector_id}, at=now)
    return User(username, role, collector_id)


def set_password(engine: sa.Engine, username: str, password: str, actor: str = "system") -> None:
    """Replace a user's password (strength-checked; audit row without the hash).

    Raises
    ------
    UserError
        Unknown user or weak password.
    """
    from analytics.db import require_writable

    require_writable(engine, "change passwords")
    check_password_strength(password, username)
    password_hash = hash_password(password)
    from analytics.workflow import append_audit

    t = schema.users
    with engine.begin() as conn:
        updated = conn.execute(t.update().where(t.c.username == username).values(password_hash=password_hash))
        if not updated.rowcount:
            raise UserError(f"username: no user {username!r}")
        append_audit(conn, actor, "set_password", "users", username, None, {"password": "changed"})


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password("dummy-password-for-timing")
    return _DUMMY_HASH


def authenticate(engine: sa.Engine, username: str, password: str) -> User | None:
    """The user when ``username``/``password`` are right, else None.

    An unknown user name still costs one Argon2 verification, so timing does not reveal which
    user names exist. A hash made with older parameters is upgraded on successful sign-in.

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
    t = schema.users
    with engine.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.username == (username or "").strip())).first()
    if row is None:
        verify_password(_dummy_hash(), password or "")
        return None
    if not password or not verify_password(row.password_hash, password):
        return None
    from analytics.db import is_readonly

    try:  # upgrade an old hash; not on a read-only database (the old hash keeps working)
        if not is_readonly(engine) and _HASHER.check_needs_rehash(row.password_hash):
            with engine.begin() as conn:
                conn.execute(t.update().where(t.c.username == row.username)
                             .values(password_hash=hash_password(password)))
    except InvalidHashError:  # pragma: no cover - verify already accepted it
        pass
    return User(row.username, row.role, row.collector_id)


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
            add_user(engine, username, demo_password(username), role, cid, actor="demo")
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
    """Add ``users add|passwd|list|demo`` to the ``users`` command parser."""
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
    lst = sub.add_parser("list", help="list users (never the hashes)")
    _common(lst)
    lst.set_defaults(run=_run_list)
    demo = sub.add_parser("demo", help="create the demo accounts (admin, manager, finance, one per collector)")
    _common(demo)
    demo.set_defaults(run=_run_demo)
