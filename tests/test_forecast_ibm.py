"""The forecast on the real IBM sample (every invoice settled): as of 2013-06-30 using only earlier data."""
import datetime as dt

import pytest

from analytics import loaders
from analytics.forecast import backtest, backtest_summary, forecast, load_history

AS_OF = dt.date(2013, 6, 30)


@pytest.fixture
def ibm(duckdb_engine, ibm_csv):
    loaders.load(duckdb_engine, "ibm", ibm_csv)
    return duckdb_engine


def test_ibm_forecast_and_backtest_as_of_mid_2013(ibm):
    h = load_history(ibm, AS_OF)
    assert h.receipts.index[-1].date() == AS_OF - dt.timedelta(days=6)  # last history week ends on as-of
    assert not h.open_groups.empty  # invoices open at the end of June 2013 (settled later)
    bt = backtest(ibm, end=AS_OF, origins=3, step=4, min_train_weeks=26)
    assert max(bt.attrs["origin_dates"]) <= (AS_OF - dt.timedelta(days=91)).isoformat()
    s = backtest_summary(bt)
    assert s["wape_all"].notna().all() and (s["wape_all"] < 1).all()
    fc = forecast(ibm, AS_OF, weeks=13, selection=s)
    assert len(fc) == 13 and fc["week_start"].iloc[0] == dt.date(2013, 7, 1)
    assert (fc["expected"] > 0).all()
    # weekly IBM receipts are around 1,400; the forecast must be in that range
    assert 500 < fc["expected"].mean() < 3000
