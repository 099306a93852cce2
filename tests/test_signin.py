"""Sign-in that resists guessing (analytics.auth.sign_in, dashboard.access): failures counted per user
name in the database with a growing delay and a 15-minute lockout, unknown names treated the same,
every attempt audited, demo passwords changed outside demo mode, the 12-hour session maximum, the
first administrator only with the one-time token, and the server bound to 127.0.0.1.
"""
from __future__ import annotations

import datetime as dt
import threading
import time
import tomllib
from pathlib import Path

import pytest
import sqlalchemy as sa

from analytics import audit, auth, db, schema
from analytics.auth import PermissionDenied, User
from analytics.errors import UserError
from tests.apptest_helpers import app_test, texts
from tests.test_auth import cheap_hashing  # noqa: F401 (autouse: low-cost Argon2, same algorithm)

ROOT = Path(__file__).resolve().parent.parent
T0 = dt.datetime(2026, 11, 30, 9, 0, 0)


@pytest.fixture
def alice(engine):
    auth.add_user(engine, "alice", "alice-password-1", "manager")
    return engine


def _at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def _actions(engine) -> list[str]:
    return audit.audit_trail(engine, limit=10_000)["action"].tolist()[::-1]


def _guess_sequence(engine, name: str) -> list[str]:
    """The documented schedule, driven by the clock: 3 free tries, then 1 s, 2 s, then the lock."""
    out = []
    for t, pw in [(0, "a"), (0.1, "b"), (0.2, "c"),          # 3 failures
                  (0.7, "d"),                                 # too soon (1 s after the 3rd)
                  (1.3, "e"),                                 # 4th failure
                  (2.0, "f"),                                 # too soon (2 s after the 4th)
                  (3.4, "g"),                                 # 5th failure: locked for 15 minutes
                  (4.0, "alice-password-1"),                  # even the right password is refused now
                  (15 * 60 + 3.5, "alice-password-1")]:       # ... and accepted once it ran out
        out.append(auth.sign_in(engine, name, pw, now=_at(t)).status)
    return out


def test_delay_and_lockout_are_counted_in_the_database(alice, db_url):
    statuses = _guess_sequence(alice, "alice")
    assert statuses == ["wrong", "wrong", "wrong", "wait", "wrong", "wait", "locked", "locked", "ok"]
    assert auth.LOCKOUT_FAILURES == 5 and auth.LOCKOUT_MINUTES == 15


def test_an_admin_unlocks_from_the_cli(alice, db_url, capsys):
    from analytics.cli import main as cli_main

    for t in range(5):
        auth.sign_in(alice, "alice", "nope", now=_at(t * 10))
    assert auth.sign_in(alice, "alice", "alice-password-1", now=_at(60)).status == "locked"
    assert cli_main(["users", "--db", db_url, "unlock", "alice"]) == 0
    assert "failed sign-ins cleared" in capsys.readouterr().out
    assert auth.sign_in(alice, "alice", "alice-password-1", now=_at(61)).status == "ok"
    assert "unlock_user" in _actions(alice)


def test_a_new_session_does_not_reset_the_count(alice, db_url):
    """The counter is in the database: another engine (another server process/session) sees it."""
    for t in (0, 0.1, 0.2):
        auth.sign_in(alice, "alice", "nope", now=_at(t))
    other = db.connect(db_url)
    try:
        assert auth.sign_in(other, "alice", "alice-password-1", now=_at(0.5)).status == "wait"
        with other.connect() as conn:
            row = conn.execute(sa.select(schema.login_throttle).where(schema.login_throttle.c.username == "alice")).one()
        assert row.failures == 3
        assert auth.sign_in(other, "alice", "alice-password-1", now=_at(1.5)).status == "ok"
        with other.connect() as conn:
            assert conn.execute(sa.select(schema.login_throttle.c.failures)
                                .where(schema.login_throttle.c.username == "alice")).scalar() == 0
    finally:
        other.dispose()


def test_unknown_names_behave_exactly_like_known_ones(alice, monkeypatch):
    """Same answers, same lockout, one Argon2 check each: nothing tells which names exist."""
    checks = []
    real = auth.verify_password
    monkeypatch.setattr(auth, "verify_password", lambda h, p: checks.append(1) or real(h, p))
    known = _guess_sequence(alice, "alice")
    known_checks, checks[:] = len(checks), []
    unknown = _guess_sequence(alice, "mallory")
    assert unknown[:-1] == known[:-1] and unknown[-1] == "wrong"
    assert len(checks) == known_checks
    assert auth.SignInResult(None, "wrong").message == "Unknown username or wrong password."


def test_parallel_guesses_are_all_counted(alice):
    """20 guesses at once from 20 sessions: at most 5 reach the password check before the lock."""
    results = []

    def guess(i):
        results.append(auth.sign_in(alice, "alice", f"guess-{i}", now=T0).status)  # all at the same instant

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20
    checked = [s for s in results if s in ("wrong", "locked")]
    assert _actions(alice).count("signin_failed") == len(checked) <= auth.LOCKOUT_FAILURES
    assert auth.sign_in(alice, "alice", "alice-password-1", now=T0).status in ("locked", "wait")
    assert audit.verify_chain(alice).ok


def test_sign_ins_are_audited(alice):
    auth.sign_in(alice, "alice", "bad", now=_at(0))
    auth.sign_in(alice, "ghost", "bad", now=_at(0))
    assert auth.authenticate(alice, "alice", "alice-password-1") == User("alice", "manager")
    trail = audit.audit_trail(alice)
    assert trail["action"].tolist()[:3] == ["signin", "signin_failed", "signin_failed"]
    assert trail["actor"].tolist()[:3] == ["alice", "ghost", "alice"]
    assert "alice-password-1" not in trail.to_string() and "bad" not in "".join(trail["after"].dropna())
    assert audit.verify_chain(alice).ok


def test_demo_password_must_be_changed_outside_demo_mode(engine, monkeypatch):
    auth.create_demo_users(engine)
    monkeypatch.setenv(auth.DEMO_MODE_ENV, "1")
    assert auth.sign_in(engine, "admin", "admin-demo").status == "ok"  # `make run`: the README's sign-in works
    monkeypatch.delenv(auth.DEMO_MODE_ENV)
    result = auth.sign_in(engine, "admin", "admin-demo")
    assert result.status == "must_change_password" and result.user == User("admin", "admin")
    with pytest.raises(UserError, match="must differ"):
        auth.change_own_password(engine, "admin", "admin-demo", "admin-demo")
    with pytest.raises(UserError, match="demo password"):
        auth.set_password(engine, "admin", "admin-demo")
    with pytest.raises(UserError, match="wrong password"):
        auth.change_own_password(engine, "admin", "not-the-password", "a-fresh-secret-9")
    auth.change_own_password(engine, "admin", "admin-demo", "a-fresh-secret-9")
    assert auth.sign_in(engine, "admin", "a-fresh-secret-9").status == "ok"
    assert auth.sign_in(engine, "admin", "admin-demo").status == "wrong"
    assert "set_password" in _actions(engine)


def test_a_demo_password_is_recognised_on_an_older_ledger(engine, monkeypatch):
    """Accounts made before the flag existed: the documented password itself triggers the change."""
    monkeypatch.delenv(auth.DEMO_MODE_ENV, raising=False)
    auth.add_user(engine, "finance", "finance-demo", "finance")  # no must_change flag
    assert auth.sign_in(engine, "finance", "finance-demo").status == "must_change_password"


def test_dashboard_asks_for_a_new_demo_password(monkeypatch, tmp_path):
    url = f"duckdb:///{tmp_path / 'demo.duckdb'}"
    eng = db.connect(url)
    auth.create_demo_users(eng)
    eng.dispose()
    monkeypatch.delenv(auth.DEMO_MODE_ENV, raising=False)
    at = app_test(monkeypatch, url, role=None).run()
    at.text_input(key="_signin_user").set_value("manager")
    at.text_input(key="_signin_password").set_value("manager-demo")
    next(b for b in at.button if b.label == "Sign in").click()
    at.run()
    assert "user" not in at.session_state
    assert "documented demo password" in texts(at)
    at.text_input(key="_signin_current_pw").set_value("manager-demo")
    at.text_input(key="_signin_new_pw1").set_value("Manager-new-pass-7")
    at.text_input(key="_signin_new_pw2").set_value("Manager-new-pass-7")
    next(b for b in at.button if b.label == "Change password and sign in").click()
    at.run()
    assert not at.exception
    assert at.session_state["user"] == User("manager", "manager")


def test_session_ends_twelve_hours_after_sign_in_whatever_the_activity(monkeypatch, tmp_path):
    url = f"duckdb:///{tmp_path / 'l.duckdb'}"
    db.connect(url).dispose()
    at = app_test(monkeypatch, url, role="manager")
    now = time.time()
    at.session_state["_signed_in_at"] = now - 12 * 3600 - 60
    at.session_state["_last_seen"] = now - 5  # active a moment ago
    at.run()
    assert not at.exception
    assert "user" not in at.session_state
    assert "at most 12 hours" in texts(at)


def test_first_administrator_needs_the_one_time_token_and_this_machine(engine, tmp_path, monkeypatch, caplog):
    token_file = tmp_path / "first_admin_token"
    monkeypatch.setenv(auth.FIRST_ADMIN_TOKEN_ENV, str(token_file))
    with caplog.at_level("WARNING", logger="analytics.auth"):
        token = auth.issue_first_admin_token(engine)
    assert token and token in caplog.text and token_file.read_text().strip() == token
    assert token_file.stat().st_mode & 0o077 == 0  # readable by the server's user only
    assert auth.issue_first_admin_token(engine) == token  # the same until used
    with pytest.raises(PermissionDenied, match="server itself"):
        auth.create_first_admin(engine, "root", "a-long-secret", token, client_address="203.0.113.9")
    with pytest.raises(PermissionDenied, match="one-time token"):
        auth.create_first_admin(engine, "root", "a-long-secret", "guess", client_address="127.0.0.1")
    assert auth.list_users(engine) == []
    assert auth.create_first_admin(engine, "root", "a-long-secret", token, client_address="::1") == \
        User("root", "admin")
    assert not token_file.exists()  # used up
    assert "create_first_admin" in _actions(engine)
    with pytest.raises(PermissionDenied):
        auth.create_first_admin(engine, "evil", "a-long-secret", token, client_address="127.0.0.1")
    assert auth.issue_first_admin_token(engine) is None  # there are users now
    assert [u["username"] for u in auth.list_users(engine)] == ["root"]


def test_server_binds_localhost_however_started():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
