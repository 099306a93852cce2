"""Worklist and Risk pages, driven through the real app entry with AppTest (small generated ledger)."""
from __future__ import annotations

import datetime as dt

import pytest

from analytics import db, kpis
from analytics.ledger import LedgerFilter
from analytics.risk.scoring import account_balances
from tests.apptest_helpers import assert_clean, open_page


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    from analytics.generator import generate

    url = f"duckdb:///{tmp_path_factory.mktemp('riskpages') / 'gen.duckdb'}"
    eng = db.connect(url)
    generate(eng, customers=25, invoices=800, seed=5, end=dt.date(2025, 12, 31), months=12)
    with eng.connect() as conn:  # the collector with most open accounts in the currency the sidebar picks
        main = kpis.main_currency(conn, LedgerFilter())
        bal = account_balances(conn, dt.date(2025, 12, 31), LedgerFilter(currencies=(main,)))
        collector = bal["collector_id"].value_counts().index[0]
    eng.dispose()
    return url, collector


def _all_text(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title]
    return "\n".join(str(p) for p in parts)


def test_worklist_page_collector_sees_own_portfolio(monkeypatch, page_url):
    url, collector = page_url
    at = open_page(monkeypatch, url, "worklist", role="collector", collector_id=collector)
    assert not at.exception, at.exception
    assert any(m.label == "Accounts to work" for m in at.metric)
    frames = [df.value for df in at.dataframe]
    assert frames, "the worklist table is shown"
    wl = frames[0]
    assert set(wl["collector_id"]) == {collector}
    assert list(wl["rank"]) == sorted(wl["rank"])
    assert "Why:" in _all_text(at)


def test_risk_page_manager(monkeypatch, page_url):
    url, _ = page_url
    at = open_page(monkeypatch, url, "risk", role="manager")
    assert not at.exception, at.exception
    assert any(m.label == "Expected loss" for m in at.metric)
    assert "Flagged for credit review" in [s.value for s in at.subheader]
    at.button(key="risk_card_btn").click().run()
    assert not at.exception, at.exception
    assert "ROC AUC" in at.dataframe[-1].value.columns
    assert any("Brier score" in c.value for c in at.caption)
    # the policy backtest needs a ledger generated with contact effects: said plainly, no traceback
    at.button(key="risk_policy_btn").click().run()
    assert not at.exception, at.exception
    assert any("--contact-effects" in i.value for i in at.info)


@pytest.mark.parametrize("page, role", [("worklist", "finance"), ("risk", "collector"), ("risk", "admin")])
def test_pages_render_for_other_roles(monkeypatch, page_url, page, role):
    url, collector = page_url
    at = open_page(monkeypatch, url, page, role=role, collector_id=collector if role == "collector" else None)
    assert_clean(at)


def test_worklist_page_empty_state(monkeypatch, tmp_path):
    url = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    db.connect(url).dispose()
    at = open_page(monkeypatch, url, "worklist", role="manager")
    assert not at.exception
    assert any("No account" in i.value for i in at.info)
