"""One embedded DuckDB file, several programs (issue 14, part 2).

DuckDB locks a file for the whole process while it is open, so the product opens the file only while
queries run, lets go of it after ``AR_DB_IDLE_RELEASE`` seconds idle, and waits (bounded by
``AR_DB_LOCK_WAIT``) for another program's lock (:func:`analytics.db.share_file`). Checked here with
real processes on real files, never a mock:

- a write waits for another process's transaction and then lands; past the wait it is refused with
  the plain "busy" sentence and nothing is written;
- pages keep the last cached figures under the "new data is loading" notice while another process
  writes, and a page with nothing cached shows the notice as its empty state (AppTest);
- the real ``streamlit run`` server in Chromium, signed in, pages loaded: ``kpis --json``,
  ``kpis --read-only``, ``export``, ``load`` and ``users add`` on the same file succeed; pages opened
  during a long write from another process show the notice, never an error, and refresh by themselves
  afterwards; a command started during that write waits and succeeds, one given a 1 s wait exits 2
  with the plain "busy" sentence; then a real ``generate --replace`` runs while pages are reloaded (screenshots in
  ``tests/artifacts/shared_file/``);
- eight processes released at the same instant each write to the file; all succeed.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from analytics import db, schema, workflow
from analytics.auth import User
from analytics.errors import DatabaseBusy
from dashboard import session
from tests.apptest_helpers import app_test, texts
from tests.browser_support import ARTIFACTS, check_page, chromium, dashboard_server, settle, sign_in

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ARTIFACTS / "shared_file"
NOTICE = "New data is loading"
MANAGER = User("manager", "manager", None)

# A long import in another process: a real write transaction through analytics (bulk_write, the
# version bump every import makes), held open until the test creates the release file.
HOLD = """
import pathlib, sys, time
from analytics import db
engine = db.connect(sys.argv[1])
release = pathlib.Path(sys.argv[2])
with db.bulk_write(engine) as conn:
    db.bump_ledger_version(conn)
    print("writing", flush=True)
    deadline = time.monotonic() + float(sys.argv[3])
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
print("committed", flush=True)
"""


def _env(**extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


@contextlib.contextmanager
def another_process_writing(url: str, tmp_path: Path, max_seconds: float = 60):
    """Another process holds the file in a write transaction for the block (at most ``max_seconds``);
    yields a function that lets it commit earlier."""
    release = tmp_path / f"release-{uuid.uuid4().hex}"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, url, str(release), str(max_seconds)], cwd=ROOT,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line == "writing", f"the writer did not start: {line!r} {proc.stderr.read()[-2000:]}"
        yield release.touch  # call it to let the other process commit before the block ends
    finally:
        release.touch()
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "committed" in out, err[-2000:]


def _version(url: str) -> int:
    engine = db.make_engine(url)
    try:
        return db.ledger_version(engine)
    finally:
        engine.dispose()


def _customer(url: str) -> str:
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.min(schema.customers.c.id))).scalar()
    finally:
        engine.dispose()


def test_engine_lets_go_of_the_file_when_idle(small_ledger_copy):
    engine = db.connect(small_ledger_copy)
    try:
        assert db.releases_when_idle(engine)
        db.ledger_version(engine)
        path = engine.url.database
        probe = [sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1], read_only=True).close()", path]
        time.sleep(db.idle_release_seconds() + 0.5)
        assert subprocess.run(probe, capture_output=True, text=True).returncode == 0  # another process reads it
    finally:
        engine.dispose()


def test_a_write_waits_for_another_process_then_lands_or_says_busy(small_ledger_copy, tmp_path):
    url = small_ledger_copy
    customer = _customer(url)
    before = _version(url)
    engine = db.connect(url)
    result: dict = {}

    def write():  # a new thread: the full wait (AR_DB_LOCK_WAIT, 30 s by default)
        result["id"] = workflow.log_activity(engine, MANAGER, customer, "call", note="waited for the import")

    try:
        engine.dispose()
        with another_process_writing(url, tmp_path):
            with db.waiting_for_lock(0.3), pytest.raises(DatabaseBusy) as busy:
                workflow.log_activity(engine, MANAGER, customer, "call", note="refused while busy")
            assert str(busy.value).startswith(
                "The ledger file is busy (another program is writing to it); try again"), busy.value
            waiter = threading.Thread(target=write)
            started = time.monotonic()
            waiter.start()
            time.sleep(1.0)
            assert waiter.is_alive() and "id" not in result  # still waiting for the other process
        waiter.join(30)  # the other process committed on leaving the block
        waited = time.monotonic() - started
        assert result.get("id"), "the write that waited was lost"
        assert waited >= 1.0
        with engine.connect() as conn:
            notes = conn.execute(sa.select(schema.activities.c.note)).scalars().all()
        assert "waited for the import" in notes and "refused while busy" not in notes
        assert db.ledger_version(engine) == before + 2  # the other process's bump, then this write's
    finally:
        engine.dispose()


def test_pages_keep_the_last_figures_while_another_process_writes(small_ledger_copy, tmp_path, monkeypatch):
    url = small_ledger_copy
    at = app_test(monkeypatch, url, role="manager")
    at.run()  # a manager's first page: Overview
    assert [t.value for t in at.title] == ["Overview"] and not at.exception
    figures = {m.label: m.value for m in at.metric}
    assert len(figures) >= 8
    time.sleep(db.idle_release_seconds() + 0.3)  # the dashboard lets go of the file
    with another_process_writing(url, tmp_path):
        at.session_state["_last_seen"] = time.time()
        started = time.monotonic()
        at.run()
        took = time.monotonic() - started
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert NOTICE in texts(at)
        assert {m.label: m.value for m in at.metric} == figures  # the last figures, not an error
        at.switch_page("../pages/collectors.py")  # never opened: nothing cached for it
        at.run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert NOTICE in texts(at) and not at.metric
    # In a browser the notice's poll reruns the page within BUSY_POLL_SECONDS of the commit; AppTest
    # runs no timers, so wait until the dashboard tries the file again by itself.
    time.sleep(session.BUSY_MEMORY_SECONDS)
    at.switch_page("../pages/overview.py")
    at.run()
    assert NOTICE not in texts(at) and len(at.metric) >= 8 and not at.exception
    assert took < 10, f"a page run waited {took:.1f} s for the file"


def test_a_dashboard_write_during_another_process_write_waits_or_says_retry(small_ledger_copy, tmp_path,
                                                                            monkeypatch):
    url = small_ledger_copy
    customer = _customer(url)
    at = app_test(monkeypatch, url, role="manager")
    at.run()
    at.query_params["customer"] = customer
    at.switch_page("../pages/customer_360.py")
    at.run()
    assert not at.exception and not at.error
    time.sleep(db.idle_release_seconds() + 0.3)
    with another_process_writing(url, tmp_path) as let_it_commit:
        monkeypatch.setenv(db.LOCK_WAIT_ENV, "1")
        at.text_input(key="act_outcome").set_value("busy-file call")
        next(b for b in at.button if b.label == "Save activity").click()
        at.run()
        assert not at.exception and not at.success
        assert any("ledger file is busy (another program is writing to it); try again" in e.value for e in at.error), \
            texts(at)
        monkeypatch.setenv(db.LOCK_WAIT_ENV, "30")
        threading.Timer(1.5, let_it_commit).start()
        started = time.monotonic()
        at.text_input(key="act_outcome").set_value("busy-file call")  # the user presses Save again
        next(b for b in at.button if b.label == "Save activity").click()
        at.run()  # waits for the other process, then saves
        waited = time.monotonic() - started
    assert not at.exception and any("Activity saved" in s.value for s in at.success), texts(at)
    assert waited >= 1.0
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            saved = conn.execute(sa.select(sa.func.count()).select_from(schema.activities)
                                 .where(schema.activities.c.outcome == "busy-file call")).scalar()
    finally:
        engine.dispose()
    assert saved == 1  # once: the refused attempt wrote nothing, the waiting one landed


def _open(page, title: str, *, notice: bool = False) -> None:
    """Click ``title`` in the navigation and wait for its run (and, when ``notice``, for the notice)."""
    page.locator('[data-testid="stSidebarNav"]').locator("a", has_text=title).first.click()
    page.locator("h1", has_text=title).first.wait_for()
    if notice:
        page.get_by_text(NOTICE).first.wait_for()
    settle(page)
    check_page(page, title)


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _file_to_load(tmp_path: Path) -> list[str]:
    """``load`` arguments: the IBM sample when the shared datasets are there, else a generated CSV."""
    ibm = ROOT.parent / "shared" / "datasets" / "ibm_ar" / "WA_Fn-UseC_-Accounts-Receivable.csv"
    if ibm.exists():
        return ["ibm", str(ibm)]
    src = tmp_path / "export.csv"
    src.write_text("Cust,Doc,Date,Amt\n" + "".join(
        f"LX{i % 40},LXD{i},2026-{1 + i % 9:02d}-{1 + i % 28:02d},{100 + i % 900}.25\n" for i in range(2000)))
    mapping = tmp_path / "m.toml"
    mapping.write_text('default_terms_days = 30\ndefault_currency = "USD"\n[columns]\ncustomer_id = "Cust"\n'
                       'invoice_id = "Doc"\ninvoice_date = "Date"\namount = "Amt"\n')
    return ["csv", str(src), "--mapping", str(mapping)]


@pytest.mark.browser
def test_dashboard_and_commands_share_the_file(small_ledger_copy, tmp_path):
    url = small_ledger_copy
    env = _env(AR_DB_URL=url)
    log_path = tmp_path / "streamlit.log"
    timings: dict[str, float] = {}

    def commands(*specs: tuple) -> list[subprocess.CompletedProcess]:
        """Run ``(name, args, stdin)`` commands at the same time (they take turns on the file); all must succeed."""
        started = time.monotonic()
        procs = [subprocess.Popen([sys.executable, "-m", "analytics", *args], cwd=ROOT, env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _, args, _ in specs]
        done = []
        for (name, args, stdin), proc in zip(specs, procs):
            out, err = proc.communicate(stdin, timeout=180)
            timings[name] = round(time.monotonic() - started, 2)
            assert proc.returncode == 0, f"{name}: exit {proc.returncode}\n{err[-2000:]}"
            assert "Traceback" not in err, err[-2000:]
            done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
        return done

    with dashboard_server(url, log_path) as base, chromium() as browser:
        page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
        page.set_default_timeout(60_000)
        sign_in(page, base, "manager", "manager-demo")
        page.get_by_text("Total AR").first.wait_for()
        settle(page)
        check_page(page, "Overview")
        _shot(page, "01_signed_in_overview")
        _open(page, "Aging")
        _open(page, "Overview")

        # The dashboard is up, signed in, pages loaded: the commands work on the same file.
        kpis, kpis_ro, _ = commands(("kpis --json", ["kpis", "--json"], None),
                                    ("kpis --read-only", ["kpis", "--json", "--read-only"], None),
                                    ("export", ["export", str(tmp_path / "backup.zip")], None))
        assert json.loads(kpis.stdout)["ar_total"] > 0 and json.loads(kpis_ro.stdout) == json.loads(kpis.stdout)
        assert (tmp_path / "backup.zip").stat().st_size > 10_000
        commands(("load", ["load", *_file_to_load(tmp_path)], None),
                 ("users add", ["users", "add", "ops", "--role", "admin", "--password-stdin"],
                  "a-long-enough-password\n"))
        _open(page, "Overview")  # the load bumped the ledger version: these runs read the file again
        _shot(page, "02_after_the_commands")
        _open(page, "Aging")

        # A long write from another process: pages show the last figures under the notice.
        with another_process_writing(url, tmp_path):
            _open(page, "Overview", notice=True)
            assert page.get_by_text("Total AR").count() > 0  # the figures, not an empty page
            _shot(page, "03_overview_during_a_long_write")
            _open(page, "Aging", notice=True)
            _shot(page, "04_aging_during_a_long_write")
            fresh = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
            fresh.set_default_timeout(60_000)
            fresh.goto(base)  # a reload is a new session: the sign-in screen cannot read the users yet
            fresh.get_by_text(NOTICE).first.wait_for()
            settle(fresh)
            check_page(fresh, "sign-in during a long write")
            _shot(fresh, "05_new_session_during_a_long_write")
            # a command past its wait says so plainly; one with the default wait runs once the write ends
            refused = subprocess.run([sys.executable, "-m", "analytics", "kpis", "--json"], cwd=ROOT,
                                     env={**env, "AR_DB_LOCK_WAIT": "1"}, capture_output=True, text=True)
            assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
            assert "the ledger file is busy (another program is writing to it); try again" in refused.stderr.lower()
            waiting = subprocess.Popen([sys.executable, "-m", "analytics", "kpis", "--json"], cwd=ROOT, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(1.0)
        out, err = waiting.communicate(timeout=120)
        assert waiting.returncode == 0 and json.loads(out)["ar_total"] > 0, err[-2000:]
        started = time.monotonic()
        page.get_by_text(NOTICE).first.wait_for(state="detached", timeout=30_000)  # refreshes by itself
        fresh.get_by_role("button", name="Sign in").wait_for(timeout=30_000)
        timings["page refreshed after the write"] = round(time.monotonic() - started, 2)
        settle(page)
        check_page(page, "Overview after the write")
        _shot(page, "06_refreshed_after_the_write")

        # A real `generate --replace` in another process while pages are opened again and again.
        gen = subprocess.Popen([sys.executable, "-m", "analytics", "generate", "--replace", "--customers", "100",
                                "--invoices", "12000", "--seed", "3"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        runs = notices = 0
        started = time.monotonic()
        while gen.poll() is None and time.monotonic() - started < 120:
            title = ("Aging", "Overview")[runs % 2]
            _open(page, title)
            runs += 1
            if NOTICE in page.locator("body").inner_text():
                notices += 1
                if notices == 1:
                    _shot(page, "07_during_generate_replace")
        out, err = gen.communicate(timeout=120)
        assert gen.returncode == 0 and "Traceback" not in err, err[-2000:]
        timings["generate --replace"] = round(time.monotonic() - started, 2)
        _open(page, "Aging" if runs % 2 == 0 else "Overview")
        _open(page, "Overview" if runs % 2 == 0 else "Aging")
        assert NOTICE not in page.locator("body").inner_text()
        _shot(page, "08_after_generate_replace")
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    print(f"\nseconds with the dashboard up (commands started together, from their start): {timings}; "
          f"page runs during generate: {runs}, "
          f"with the notice: {notices}")


# Eight writer processes released at the same instant: four `users add` through the CLI, four
# activities logged through analytics.workflow.
WRITER = """
import pathlib, sys, time
from analytics import auth, cli, db, workflow
go, kind, n, url, customer = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
started = time.monotonic()
if kind == "user":
    rc = cli.main(["users", "--db", url, "add", f"writer{n}", "--role", "manager", "--password", f"writer-{n}-pw-long"])
else:
    engine = db.connect(url)
    workflow.log_activity(engine, auth.User("manager", "manager", None), customer, "call", note=f"writer {n}")
    rc = 0
print(f"{time.monotonic() - started:.2f}", flush=True)
sys.exit(rc)
"""


def test_eight_writer_processes_all_succeed(small_ledger_copy, tmp_path):
    url = small_ledger_copy
    customer = _customer(url)
    before = _version(url)
    go = tmp_path / "go"
    # A loaded 2-core machine runs eight Python processes slowly: allow a longer (still bounded) wait.
    env = _env(AR_DB_LOCK_WAIT="120")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(go), "user" if n < 4 else "activity", str(n), url,
                               customer], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for n in range(8)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-2000:]
    go.touch()  # all at once
    results = [proc.communicate(timeout=240) for proc in procs]
    failed = [(n, p.returncode, err[-800:]) for n, (p, (_, err)) in enumerate(zip(procs, results)) if p.returncode]
    assert not failed, failed
    seconds = sorted(float(out.strip().splitlines()[-1]) for out, _ in results)
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            users = set(conn.execute(sa.select(schema.users.c.username)).scalars())
            notes = conn.execute(sa.select(schema.activities.c.note)
                                 .where(schema.activities.c.note.like("writer %"))).scalars().all()
        assert {f"writer{n}" for n in range(4)} <= users
        assert sorted(notes) == [f"writer {n}" for n in range(4, 8)]
        assert db.ledger_version(engine) >= before + 4
    finally:
        engine.dispose()
    print(f"\neight writers, seconds from release to done: {seconds}")
