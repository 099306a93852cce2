"""End-to-end: the real ``streamlit run dashboard/app.py`` server driven by headless Chromium.

Starts the dashboard on a free localhost port against a small generated DuckDB ledger, signs in,
visits every page in the navigation, waits for each to settle, saves a screenshot in
``tests/artifacts/`` and fails on any Streamlit exception box or error text. Uses Debian's
``/usr/bin/chromium`` through Playwright (never downloads a browser); skips when it is missing.

One customer's name is hostile Markdown (an image pointing at a local "beacon" server and a link) and
one of its invoices has a formula as its reference: Customer 360 must show the name as plain text (no
image fetched, no link), and the tables must offer no built-in "Download as CSV" (only the product's
own CSV/Excel buttons, whose file keeps the formula inert).
"""
from __future__ import annotations

import csv
import http.server
import io
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.browser_support import ARTIFACTS, check_page, chromium, dashboard_server, raw_values, settle

pytestmark = pytest.mark.browser

PASSWORD = "browser-test-pw"


FORMULA = "=cmd|' /C calc'!A0"


@pytest.fixture(scope="module")
def beacon():
    """A local HTTP server recording every request: an injected image or link must never reach it."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    yield {"name": f"![b]({base}/beacon.png) [Click to verify]({base}/phish) **bold** <b>x</b> :red[red]",
           "base": base, "hits": hits}
    srv.shutdown()


@pytest.fixture(scope="module")
def ledger_url(tmp_path_factory, beacon) -> str:
    import sqlalchemy as sa

    from analytics import auth, db, generator, schema

    path = tmp_path_factory.mktemp("browser") / "ledger.duckdb"
    url = f"duckdb:///{path}"
    engine = db.connect(url)
    generator.generate(engine, customers=40, invoices=1500, seed=5)
    auth.add_user(engine, "admin", PASSWORD, "admin")
    auth.add_user(engine, "manager", PASSWORD, "manager")
    auth.add_user(engine, "finance", PASSWORD, "finance")
    with engine.connect() as conn:
        first_collector = conn.execute(sa.select(schema.collectors.c.id).order_by(schema.collectors.c.id)).scalar()
    auth.add_user(engine, "col01", PASSWORD, "collector", first_collector)
    inv = schema.invoices
    with engine.begin() as conn:  # the latest invoice is open at the default as-of date
        latest = conn.execute(sa.select(inv.c.id, inv.c.customer_id).order_by(inv.c.invoice_date.desc(), inv.c.id)
                              .limit(1)).one()
        conn.execute(schema.customers.update().where(schema.customers.c.id == latest.customer_id)
                     .values(name=beacon["name"]))
        conn.execute(inv.update().where(inv.c.id == latest.id).values(reference=FORMULA))
    beacon["customer_id"], beacon["invoice_id"] = latest.customer_id, latest.id
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

    assert page.locator("h1").first.inner_text().strip() == "Overview"  # the admin's landing page
    problems: list[str] = []
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
        problems += _raw_on_page(page, "admin", title)
        visited.append(title)
    assert visited == titles
    assert not problems, "\n".join(problems)
    context.close()
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert time.time() - started < 180


def test_injected_name_is_plain_text_and_tables_have_no_builtin_csv_export(server, browser, beacon):
    base, log_path = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{base}/customer_360?customer={beacon['customer_id']}")
    page.get_by_role("textbox", name="Username").fill("admin")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.locator('[data-testid="stSidebarNav"]').wait_for()
    settle(page, timeout=60.0)
    # The deep link survives sign-in: its page and its customer (issue 17).
    page.locator("h1", has_text="Customer 360").first.wait_for()
    page.locator("h3", has_text="Click to verify").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "security_c360_injected_name.png"), full_page=True)
    check_page(page, "Customer 360 with an injected name")

    main = page.locator('[data-testid="stMain"]')
    heading = main.locator("h3", has_text="Click to verify").first
    shown = heading.inner_text().replace("\u2060", "").strip()  # the escape's invisible word joiners
    assert shown == f"{beacon['name']} · {beacon['customer_id']}", shown
    assert heading.locator("img, strong, b, a[href^='http']").count() == 0
    assert main.locator("img[src*='beacon']").count() == 0
    assert page.locator(f"a[href^='{beacon['base']}']").count() == 0
    time.sleep(1.0)
    assert beacon["hits"] == [], f"the browser fetched {beacon['hits']}"

    # The toolbar of a table: search and fullscreen, but no built-in "Download as CSV".
    grid = main.locator('[data-testid="stDataFrame"]').first
    grid.hover()
    toolbar = main.locator('[data-testid="stElementToolbar"]').first
    toolbar.wait_for(state="attached")
    time.sleep(0.5)
    page.screenshot(path=str(ARTIFACTS / "security_c360_table_toolbar.png"))
    labels = [(b.get_attribute("aria-label") or "") + " " + (b.get_attribute("title") or "") + " " + b.inner_text()
              for b in toolbar.locator("button").all()]
    assert labels, "no table toolbar found"
    assert not any("download" in label.lower() for label in labels), labels

    # The product's own CSV button: the formula arrives inert.
    with page.expect_download() as info:
        main.locator('[data-testid="stDownloadButton"] button', has_text="CSV").first.click()
    text = Path(info.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    refs = [r.get("Reference") or r.get("reference") for r in rows]
    assert "'" + FORMULA in refs and FORMULA not in refs, refs[:5]
    context.close()
    assert "Traceback" not in log_path.read_text(errors="replace")


ROLES = ("manager", "finance", "col01")  # admin: test_sign_in_and_visit_every_page
LANDING = {"admin": "Overview", "manager": "Overview", "finance": "Cash forecast", "col01": "Worklist"}


def _raw_on_page(page, role: str, title: str) -> list[str]:
    """:func:`raw_values` of the page, and, for the collector, of each Customer 360 tab (they hold the
    timeline and the forms; the same tabs for manager and finance add time, not coverage)."""
    found = [f"{role} / {title}: {p}" for p in raw_values(page)]
    if title == "Customer 360" and role == "col01":
        for tab in page.locator('[data-testid="stMain"] [role="tab"]').all():
            tab.click()
            settle(page)
            found += [f"{role} / {title} / {tab.inner_text()}: {p}" for p in raw_values(page)]
    return found


def _sign_in(page, base: str, username: str) -> None:
    page.goto(base)
    page.get_by_role("button", name="Sign in").wait_for()
    settle(page)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.locator('[data-testid="stSidebarNav"]').wait_for()
    settle(page, timeout=90.0)


def test_every_page_reads_cleanly_for_every_role(server, browser):
    """Issue 17: every page for admin, manager, finance and a collector shows no ``nan``/``None``/``NaT``,
    no `` 00:00:00``, no amount of 5+ digits without separators and no cut metric card; each role lands
    on its own page; the collector's Customer 360 tabs are opened too. Screenshots: ``tests/artifacts/<role>_<page>.png``."""
    base, log_path = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    for role in ROLES:
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        _sign_in(page, base, role)
        assert page.locator("h1").first.inner_text().strip() == LANDING[role], role
        nav = page.locator('[data-testid="stSidebarNav"]')
        titles = [t.strip().splitlines()[-1].strip() for t in nav.locator("a").all_inner_texts() if t.strip()]
        for title in titles:
            nav.locator("a", has_text=title).first.click()
            page.locator("h1", has_text=title.split(" &")[0]).first.wait_for()
            settle(page, timeout=90.0)
            slug = "".join(ch if ch.isalnum() else "_" for ch in f"{role}_{title}".lower())
            page.screenshot(path=str(ARTIFACTS / f"role_{slug}.png"), full_page=True)
            check_page(page, f"{role}: {title}")
            problems += _raw_on_page(page, role, title)
        context.close()
    assert not problems, "\n".join(problems)
    assert "Traceback" not in log_path.read_text(errors="replace")


def test_refresh_keeps_the_session_and_sign_out_ends_it(server, browser, beacon):
    """Issue 17: a browser refresh keeps the user signed in on the same page and customer; after
    sign-out the same address (token included) asks for a password again."""
    base, _ = server
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    _sign_in(page, base, "manager")
    page.goto(f"{page.url.split('?')[0].rstrip('/')}/customer_360?customer={beacon['customer_id']}&"
              + page.url.split("?", 1)[1])
    page.locator("h3", has_text="Click to verify").first.wait_for()
    settle(page)
    page.reload()
    page.locator("h1", has_text="Customer 360").first.wait_for()
    page.locator("h3", has_text="Click to verify").first.wait_for()
    settle(page)
    assert "/customer_360" in page.url and "session=" in page.url, page.url
    page.screenshot(path=str(ARTIFACTS / "session_after_refresh.png"), full_page=True)
    kept = page.url
    # The address pasted into another browser does not carry the session (the token is bound to the browser).
    other = browser.new_context(viewport={"width": 1440, "height": 1000}, user_agent="Another browser/1.0")
    elsewhere = other.new_page()
    elsewhere.goto(kept)
    elsewhere.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
    settle(elsewhere)
    assert elsewhere.locator('[data-testid="stSidebarNav"]').count() == 0
    other.close()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()
    page.goto(kept)  # the old token is revoked
    page.get_by_role("button", name="Sign in").wait_for()
    settle(page)
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    context.close()
