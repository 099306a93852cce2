"""End-to-end: the real ``streamlit run dashboard/app.py`` server driven by headless Chromium.

Starts the dashboard on a free localhost port against a small generated DuckDB ledger, signs in,
visits every page in the navigation, waits for each to settle, saves a screenshot in
``tests/artifacts/`` and fails on any Streamlit exception box or error text. Uses Debian's
``/usr/bin/chromium`` through Playwright (never downloads a browser); skips when it is missing.
"""
from __future__ import annotations

import shutil
import time

import pytest

from tests.browser_support import ARTIFACTS, check_page, chromium, dashboard_server, settle

pytestmark = pytest.mark.browser

PASSWORD = "browser-test-pw"


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
    log_path = tmp_path_factory.mktemp("server") / "streamlit.log"
    with dashboard_server(ledger_url, log_path) as base:
        yield base, log_path


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


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
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "00_sign_in.png"))
    check_page(page, "sign-in screen")
    page.get_by_role("textbox", name="Username").fill("admin")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.wait_for()
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "00_signed_in.png"), full_page=True)
    check_page(page, "after sign-in")

    links = nav.locator("a")
    titles = [t.strip().splitlines()[-1].strip() for t in links.all_inner_texts() if t.strip()]  # after the icon
    assert {"Overview", "Aging", "Customer 360", "Data"} <= set(titles), titles
    visited = []
    for i, title in enumerate(titles, start=1):
        nav.locator("a", has_text=title).first.click()
        page.locator("h1", has_text=title.split(" &")[0]).first.wait_for(timeout=30_000)
        settle(page, timeout=90.0)  # first Worklist/Risk visit trains the model
        slug = "".join(ch if ch.isalnum() else "_" for ch in title.lower())
        page.screenshot(path=str(ARTIFACTS / f"{i:02d}_{slug}.png"), full_page=True)
        check_page(page, title)
        visited.append(title)
    assert visited == titles
    context.close()
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert time.time() - started < 120
