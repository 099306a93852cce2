"""Users, password hashing, roles, portfolio scoping, sessions and the `users` CLI."""
import datetime as dt
import io
import json

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from analytics import auth, cli, schema
from analytics.auth import PermissionDenied, Session, User
from analytics.errors import UserError
from analytics.ledger import LedgerFilter


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch):
    # argon2 at library defaults costs ~0.25 s per hash here; the algorithm is the same at low cost.
    monkeypatch.setattr(auth, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    monkeypatch.setattr(auth, "_DUMMY_HASH", None)


@pytest.fixture
def people(engine):
    with engine.begin() as c:
        c.execute(schema.collectors.insert(), [{"id": "C01", "name": "Ann"}, {"id": "C02", "name": "Bob"}])
        c.execute(schema.customers.insert(), [{"id": "K1", "name": "Kappa", "collector_id": "C01"},
                                              {"id": "K2", "name": "Lambda", "collector_id": "C02"},
                                              {"id": "K3", "name": "Nobody's", "collector_id": None}])
    return engine


def test_hash_is_argon2id_salted_and_verifies():
    h1, h2 = auth.hash_password("s3cret-pass"), auth.hash_password("s3cret-pass")
    assert h1 != "s3cret-pass" and "s3cret-pass" not in h1 and h1.startswith("$argon2id$")
    assert h1 != h2  # salted
    assert auth.verify_password(h1, "s3cret-pass") and not auth.verify_password(h1, "s3cret-pasS")
    assert not auth.verify_password("not-a-hash", "s3cret-pass")


def test_default_hasher_is_argon2id_library_defaults():
    monkey_free = PasswordHasher()
    assert monkey_free.type.name == "ID"


def test_add_and_authenticate(people):
    u = auth.add_user(people, "ann", "ann-password-1", "collector", "C01")
    assert u == User("ann", "collector", "C01")
    assert auth.authenticate(people, "ann", "ann-password-1") == u
    assert auth.authenticate(people, "ann", "wrong-password") is None
    assert auth.authenticate(people, "ann", "") is None
    assert auth.authenticate(people, "ghost", "ann-password-1") is None
    with people.connect() as c:
        stored = c.execute(sa.select(schema.users.c.password_hash)).scalar()
        audit = c.execute(sa.select(schema.audit_log).where(schema.audit_log.c.action == "add_user")).one()
        signins = c.execute(sa.select(schema.audit_log.c.action).order_by(schema.audit_log.c.id)).scalars().all()
    assert stored != "ann-password-1" and stored.startswith("$argon2id$")
    assert audit.action == "add_user" and "password" not in (audit.after or "") and "argon2" not in audit.after
    assert signins == ["add_user", "signin", "signin_failed", "signin_failed", "signin_failed"]  # sign-ins audited
    assert [x["username"] for x in auth.list_users(people)] == ["ann"]
    assert "password_hash" not in auth.list_users(people)[0]


@pytest.mark.parametrize("args, message", [
    (("x1", "long-enough-1", "boss"), "role: unknown role 'boss'"),
    (("x1", "long-enough-1", "collector"), "collector_id: a collector user needs"),
    (("x1", "long-enough-1", "collector", "C99"), "collector_id: unknown collector 'C99'"),
    (("x1", "long-enough-1", "manager", "C01"), "collector_id: only collector users"),
    (("x1", "", "manager"), "password: must not be empty"),
    (("x1", "short", "manager"), "password: must be at least 8"),
    (("password", "password", "manager"), "password: must not be the user name"),
    (("x1", "password1", "manager"), "password: too easy"),
    (("bad name", "long-enough-1", "manager"), "username:"),
])
def test_add_user_validation(duckdb_engine, args, message):
    with duckdb_engine.begin() as c:
        c.execute(schema.collectors.insert(), [{"id": "C01", "name": "Ann"}])
    with pytest.raises(UserError, match=message):
        auth.add_user(duckdb_engine, *args)
    assert auth.list_users(duckdb_engine) == []


def test_duplicate_user_refused(duckdb_engine):
    auth.add_user(duckdb_engine, "meg", "meg-password", "manager")
    with pytest.raises(UserError, match="username: user 'meg' already exists"):
        auth.add_user(duckdb_engine, "meg", "other-password", "admin")
    assert auth.authenticate(duckdb_engine, "meg", "meg-password").role == "manager"


def test_demo_users_idempotent(people):
    first = auth.create_demo_users(people)
    assert [(u["username"], u["role"], u["collector_id"]) for u in first] == [
        ("admin", "admin", None), ("manager", "manager", None), ("finance", "finance", None),
        ("c01", "collector", "C01"), ("c02", "collector", "C02")]
    assert all(u["created"] and u["password"] == u["username"] + "-demo" for u in first)
    again = auth.create_demo_users(people)
    assert not any(u["created"] for u in again)
    assert auth.authenticate(people, "c02", "c02-demo") == User("c02", "collector", "C02")
    assert len(auth.list_users(people)) == 5


def test_role_permissions():
    admin, mgr, fin, col = User("a", "admin"), User("m", "manager"), User("f", "finance"), User("c", "collector", "C01")
    for action in auth.ACTIONS:
        auth.require(admin, action)
    auth.require(mgr, "approve_writeoff")
    auth.require(fin, "view_forecast")
    auth.require(fin, "view_provision")
    for user, action in [(mgr, "import"), (mgr, "manage_users"), (fin, "write_activity"), (fin, "approve_writeoff"),
                         (col, "approve_writeoff"), (col, "view_forecast"), (col, "import"), (col, "view_all")]:
        with pytest.raises(PermissionDenied):
            auth.require(user, action)
    with pytest.raises(PermissionDenied, match="sign in"):
        auth.require(None, "view")
    with pytest.raises(ValueError):
        auth.require(admin, "fly")


def test_portfolio_check(people):
    ann = User("ann", "collector", "C01")
    with people.connect() as c:
        auth.require(ann, "write_activity", "K1", c)
        for other in ("K2", "K3"):
            with pytest.raises(PermissionDenied, match="portfolio"):
                auth.require(ann, "write_activity", other, c)
        with pytest.raises(UserError, match="unknown customer"):
            auth.require(ann, "write_activity", "K9", c)
    auth.require(User("m", "manager"), "write_activity", "K2", people)  # managers: any customer
    auth.require(ann, "write_activity", "K1", people)  # an Engine works too


def test_scope_filter_forces_own_portfolio():
    asked = LedgerFilter(regions=("EMEA",), collectors=("C02", "C03"))
    got = auth.scope_filter(User("ann", "collector", "C01"), asked)
    assert got == LedgerFilter(regions=("EMEA",), collectors=("C01",))
    assert auth.scope_filter(User("m", "manager"), asked) is asked
    with pytest.raises(PermissionDenied):
        auth.scope_filter(None, asked)


def test_session_expiry():
    t0 = dt.datetime(2024, 1, 1, 9, 0)
    s = Session(User("a", "admin"), t0, t0)
    assert not auth.is_expired(s, t0 + dt.timedelta(minutes=30))
    assert auth.is_expired(s, t0 + dt.timedelta(minutes=31))
    s2 = s.touch(t0 + dt.timedelta(minutes=25))
    assert not auth.is_expired(s2, t0 + dt.timedelta(minutes=50))
    assert auth.is_expired(s2, t0 + dt.timedelta(minutes=50), idle_minutes=20)
    busy = Session(s.user, t0, t0 + dt.timedelta(hours=12, minutes=1))
    assert auth.is_expired(busy, t0 + dt.timedelta(hours=12, minutes=2))


def test_cli_users(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'u.sqlite'}"
    monkeypatch.setattr("sys.stdin", io.StringIO("meg-password\n"))
    assert cli.main(["users", "--db", url, "add", "meg", "--role", "manager", "--password-stdin"]) == 0
    assert "created manager meg" in capsys.readouterr().out
    assert cli.main(["users", "--db", url, "add", "meg", "--role", "manager", "--password", "xx"]) == 2
    assert "password: must be at least" in capsys.readouterr().err
    assert cli.main(["users", "--db", url, "demo", "--json"]) == 0
    demo = json.loads(capsys.readouterr().out)
    assert [u["username"] for u in demo] == ["admin", "manager", "finance"]
    assert cli.main(["users", "--db", url, "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [u["username"] for u in listed] == ["admin", "finance", "manager", "meg"]
    monkeypatch.setattr("sys.stdin", io.StringIO("new-password-2\n"))
    assert cli.main(["users", "--db", url, "passwd", "meg", "--password-stdin"]) == 0
