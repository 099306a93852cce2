"""dashboard.common helpers: the ledger-version cache, money/percent formatting, cents parsing, downloads."""
from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pytest

from analytics import db
from analytics.ledger import LedgerFilter
from dashboard import common as ui

CALLS: list[tuple] = []


def counted(conn, as_of, flt):
    """A stand-in analytics function: records each real call."""
    CALLS.append((as_of, flt))
    return pd.DataFrame({"as_of": [as_of], "n": [len(CALLS)]})


def test_cached_is_keyed_on_arguments_and_ledger_version(monkeypatch, tmp_path):
    url = f"duckdb:///{tmp_path / 'c.duckdb'}"
    monkeypatch.setenv("AR_DB_URL", url)
    CALLS.clear()
    day, flt = dt.date(2024, 3, 31), LedgerFilter(regions=("East",))
    first = ui.cached(counted, day, flt)
    again = ui.cached(counted, day, LedgerFilter(regions=("East",)))  # equal filter -> same entry
    assert len(CALLS) == 1 and again.equals(first)
    ui.cached(counted, day, LedgerFilter(regions=("West",)))
    assert len(CALLS) == 2
    engine = ui.get_engine()
    with engine.begin() as conn:
        db.bump_ledger_version(conn)  # an import or a logged call
    ui.cached(counted, day, flt)
    assert len(CALLS) == 3
    with pytest.raises(ValueError):
        ui.cached(lambda conn: 1)


@pytest.mark.parametrize("value,expected", [(1234567.5, "USD 1,234,568"), (-2500, "USD −2,500"), (None, "—"),
                                            (float("nan"), "—")])
def test_money(value, expected):
    assert ui.money(value, "USD") == expected


def test_cents_pct_days_delta():
    assert ui.cents(123456789, "EUR") == "EUR 1,234,568"
    assert ui.cents(123456789, decimals=2) == "1,234,567.89"
    assert ui.pct(82.126) == "82.1%" and ui.pct(0.5, ratio=True) == "50.0%" and ui.pct(None) == "—"
    assert ui.days(45.26) == "45.3 days" and ui.days(None) == "—"
    assert ui.delta(50.0, 45.5, kind="days") == "+4.5 days"
    assert ui.delta(80.0, 82.5, kind="pct") == "-2.5 pp"
    assert ui.delta(1000.0, 1500.0, kind="money") == "-500"
    assert ui.delta(None, 3, kind="days") is None
    assert ui.delta(-392.0, -392.2, kind="money") is None  # no change at the shown precision: no red "↑ +0"


@pytest.mark.parametrize("units,cents", [(12.345, 1235), (0.005, 1), (100, 10000), ("19.99", 1999), (0.1 + 0.2, 30)])
def test_to_cents_rounds_half_up(units, cents):
    assert ui.to_cents(units) == cents


def test_display_frame_and_downloads():
    frame = pd.DataFrame({"invoice_id": ["A"], "open_cents": [123456], "logged_at": pd.to_datetime(["2024-01-02"],
                                                                                                   utc=True)})
    frame.attrs["currency"] = "USD"
    shown = ui.display_frame(frame)
    assert list(shown.columns) == ["invoice_id", "open", "logged_at"] and shown["open"].iloc[0] == 1234.56
    assert shown.attrs == {}
    config = ui.money_columns(frame)
    assert set(config) == {"invoice_id", "open", "logged_at"}
    xlsx = ui.excel_bytes(shown, "a sheet name longer than thirty-one characters")
    back = pd.read_excel(io.BytesIO(xlsx))
    assert back["open"].iloc[0] == 1234.56
    assert ui.csv_bytes(shown).decode().splitlines()[0] == "invoice_id,open,logged_at"
