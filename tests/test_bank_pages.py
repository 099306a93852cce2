"""The bank sections of the Data and Cash application pages, through the real entry point (AppTest)."""
from __future__ import annotations

from analytics import db
from analytics.auth import User
from analytics.bank.loading import load_statement
from analytics.bank.writer import export_statement
from analytics.cash_app.posting import run_matching
from tests.apptest_helpers import assert_clean, open_page, texts


def test_cash_application_shows_hit_rate_and_suspense_after_a_statement(monkeypatch, small_ledger_copy, tmp_path):
    eng = db.connect(small_ledger_copy)
    try:
        out = tmp_path / "sim.xml"
        export_statement(eng, "camt053", str(out), simulate=60, seed=11)
        report = load_statement(eng, out, user=User("admin", "admin"))
        assert report.receipts == 60
        run_matching(eng, User("admin", "admin"))
    finally:
        eng.dispose()
    at = open_page(monkeypatch, small_ledger_copy, "cash_application", role="finance")
    assert_clean(at)
    body = texts(at)
    assert "Hit rate per statement" in body and "Suspense queue" in body and "Remittance advice" in body
    keys = {getattr(df, "key", None) for df in at.dataframe}
    assert "ca_bank_rates" in keys or any("hit_rate" in str(df.value.columns.tolist()) for df in at.dataframe)


def test_data_page_has_the_bank_statement_block(monkeypatch, small_ledger_copy):
    at = open_page(monkeypatch, small_ledger_copy, "data", role="admin")
    assert_clean(at)
    assert "Bank statement" in texts(at)
    assert any(b.key == "bank_load_btn" for b in at.button)
