"""The cash-forecast page through the real app entry: band, actuals, backtest, levers, roles."""
import pytest

from tests.apptest_helpers import assert_clean, open_directly, open_page, texts


@pytest.fixture
def page(monkeypatch, small_ledger_url):
    def _open(role="finance", **kw):
        at = open_page(monkeypatch, small_ledger_url, "cash_forecast", role=role, timeout=180, **kw)
        return at
    return _open


def test_finance_sees_forecast_backtest_and_method(page):
    at = page("finance")
    assert_clean(at)
    shown = texts(at)
    assert "Method in use" in shown and "Backtest over" in shown
    assert "band conformal-calibrated" in shown  # the band is calibrated on the page's own backtest
    assert any(m.label.startswith("Expected receipts") for m in at.metric)
    assert len(at.dataframe) >= 2  # weekly forecast and backtest table
    # a scenario lever changes the numbers and shows a scenario total
    at.slider(key="fc_shift").set_value(14).run()
    assert_clean(at)
    assert any(m.label == "Scenario total" for m in at.metric)


def test_collector_may_not_open_it(monkeypatch, small_ledger_url):
    at = open_directly(monkeypatch, small_ledger_url, "cash_forecast", role="collector", collector_id="C01")
    assert not at.exception
    assert "may not open" in texts(at) and not at.metric
