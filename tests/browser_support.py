"""Helpers for the real-browser tests: start ``streamlit run dashboard/app.py`` on a free port, drive
Debian's ``/usr/bin/chromium`` through Playwright (never downloads a browser), wait for a script run to
settle and fail on any exception box or error text.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BAD_TEXT = ("Traceback", "Something went wrong", "This app has encountered an error")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard_server(ledger_url: str, log_path: Path, extra_env: dict | None = None):
    """A ``make run``-style server on ``ledger_url``; yields its base URL, stops it on exit."""
    port = free_port()
    env = {**os.environ, "AR_DB_URL": ledger_url, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    env.pop("AR_DASHBOARD_RAISE", None)
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
           "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
           "--browser.gatherUsageStats", "false"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
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
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()


@contextlib.contextmanager
def chromium():
    """A headless Chromium (Debian's); skips the test when it or Playwright is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium: make system-deps)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def settle(page, timeout: float = 20.0) -> None:
    """Wait until the script run is over: no 'running' status widget for a short while."""
    page.wait_for_load_state("domcontentloaded")
    deadline = time.time() + timeout
    quiet_since = None
    while time.time() < deadline:
        running = any(page.locator(f'[data-testid="{tid}"]').count() > 0
                      for tid in ("stStatusWidget", "stSkeleton", "stSpinner"))
        # The app root says whether a script run is going on (a long loop with a progress bar shows
        # no status widget for seconds at a time).
        running = running or page.locator('[data-testid="stApp"][data-test-script-state="running"], '
                                          '[data-testid="stApp"][data-test-script-state="rerunRequested"]').count() > 0
        if running:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since > 0.8:
            return
        time.sleep(0.15)


def check_page(page, name: str) -> None:
    """Fail on a Streamlit exception box, an error box or any of :data:`BAD_TEXT` on the page."""
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{name}: {exceptions.first.inner_text()[:500]}"
    body = page.locator("body").inner_text()
    for bad in BAD_TEXT:
        assert bad not in body, f"{name}: page shows {bad!r}"
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{name}: error box: {errors.first.inner_text()[:300]}"


def sign_in(page, base: str, username: str, password: str) -> None:
    """Open the dashboard and sign in; returns once the navigation is there and the run settled."""
    page.goto(base)
    page.get_by_role("button", name="Sign in").wait_for()
    settle(page)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.locator('[data-testid="stSidebarNav"]').wait_for()
    settle(page)


# What a reader must never see (issue 17): missing-value markers, midnight times, amounts of 5+ digits
# written without separators (ids such as INV-0000805 or CUST-0000006, and standard names such as
# ISO 20022, are not amounts).
RAW_VALUES = re.compile(r"(?<![\w-])(nan|NaN|None|NaT)(?![\w-])| 00:00:00"
                        r"|(?<![\w.,/:-])(?<!ISO )\d{5,}(?:\.\d+)?(?![\w,])")
_GRID_CELLS_JS = """() => [...document.querySelectorAll('[data-testid="stDataFrame"] table td')]
    .map(td => td.textContent.trim()).filter(t => /^(nan|NaN|None|NaT)$|\\s00:00:00$/.test(t))"""
_CUT_METRICS_JS = """() => [...document.querySelectorAll('[data-testid="stMetricValue"]')]
    .filter(el => [el, ...el.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1))
    .map(el => el.textContent.trim())"""


def raw_values(page) -> list[str]:
    """Everything on the page a reader should not see, with a little context: ``nan``/``None``/``NaT``,
    `` 00:00:00``, an amount of 5+ digits without separators (in the page text); the same markers in the
    cells of any table (read from the grid's accessible table); metric cards whose value is cut ("USD 677,…").

    Parameters
    ----------
    page : playwright Page

    Returns
    -------
    list of str
        Empty when the page reads cleanly.
    """
    text = page.locator('[data-testid="stMain"]').inner_text()
    found = [f"text: …{text[max(0, m.start() - 40):m.end() + 20]!r}…" for m in RAW_VALUES.finditer(text)]
    found += [f"table cell: {c!r}" for c in page.evaluate(_GRID_CELLS_JS)]
    found += [f"cut metric: {c!r}" for c in page.evaluate(_CUT_METRICS_JS)]
    return found
