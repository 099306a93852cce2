"""End-to-end: the real ``streamlit run dashboard/app.py`` server driven by headless Chromium.

Starts the dashboard on a free localhost port against a small generated DuckDB ledger, signs in,
visits every page in the navigation, waits for each to settle, saves a screenshot in
``tests/artifacts/`` and fails on any Streamlit exception box or error text. Uses Debian's
``/usr/bin/chromium`` through Playwright (never downloads a browser); skips when it is missing.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "browser-test-pw"
BAD_TEXT = ("Traceback", "Something went wrong", "This app has encountered an error")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ledger_url(tmp_path_factory) -> str:
    from analytics import auth, db, generator

    path = tmp_path_factory.mktemp("browser") / "ledger.duckdb"
    url = f"duckdb:///{path}"
    engine = db.connect(url)
    generator.generate(engine, customers=40, invoices=1500, seed=5)
    auth.add_user(engine, "admin", PASSWORD, "admin")
    engine.dispose()  # DuckDB: one process at a time; the server opens it next
    return url


@pytest.fixture(scope="module")
def server(ledger_url, tmp_path_factory):
    port = _free_port()
    log_path = tmp_path_factory.mktemp("server") / "streamlit.log"
    env = {**os.environ, "AR_DB_URL": ledger_url, "PYTHONUNBUFFERED": "1"}
    env.pop("AR_DASHBOARD_RAISE", None)
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
           "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
           "--browser.gatherUsageStats", "false"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"streamlit did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)
        yield base, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium: make system-deps)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _settle(page, timeout: float = 20.0) -> None:
    """Wait until the script run is over: no 'running' status widget for a short while."""
    page.wait_for_load_state("domcontentloaded")
    deadline = time.time() + timeout
    quiet_since = None
    while time.time() < deadline:
        running = any(page.locator(f'[data-testid="{tid}"]').count() > 0
                      for tid in ("stStatusWidget", "stSkeleton", "stSpinner"))
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since > 0.8:
            return
        time.sleep(0.15)


def _check(page, name: str) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{name}: {exceptions.first.inner_text()[:500]}"
    body = page.locator("body").inner_text()
    for bad in BAD_TEXT:
        assert bad not in body, f"{name}: page shows {bad!r}"
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{name}: error box: {errors.first.inner_text()[:300]}"


def test_sign_in_and_visit_every_page(server, browser):
    base, log_path = server
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    started = time.time()
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(base)
    page.get_by_role("button", name="Sign in").wait_for()
    _settle(page)
    page.screenshot(path=str(ARTIFACTS / "00_sign_in.png"))
    _check(page, "sign-in screen")
    page.get_by_role("textbox", name="Username").fill("admin")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.wait_for()
    _settle(page)
    page.screenshot(path=str(ARTIFACTS / "00_signed_in.png"), full_page=True)
    _check(page, "after sign-in")

    links = nav.locator("a")
    titles = [t.strip().splitlines()[-1].strip() for t in links.all_inner_texts() if t.strip()]  # after the icon
    assert {"Overview", "Aging", "Customer 360", "Data"} <= set(titles), titles
    visited = []
    for i, title in enumerate(titles, start=1):
        nav.locator("a", has_text=title).first.click()
        page.locator("h1", has_text=title.split(" &")[0]).first.wait_for(timeout=30_000)
        _settle(page, timeout=90.0)  # first Worklist/Risk visit trains the model
        slug = "".join(ch if ch.isalnum() else "_" for ch in title.lower())
        page.screenshot(path=str(ARTIFACTS / f"{i:02d}_{slug}.png"), full_page=True)
        _check(page, title)
        visited.append(title)
    assert visited == titles
    context.close()
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert time.time() - started < 120
