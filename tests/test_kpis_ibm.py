"""Core KPIs on the real IBM AR sample: identical on DuckDB, SQLite and PostgreSQL, and equal to an
independent pandas computation straight from the CSV.

The sample (2,466 invoices, all settled, USD) has no open items "now", so every figure is an as-of
reconstruction: an invoice is open at D when InvoiceDate <= D < SettledDate.
"""
import datetime as dt
import uuid
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
import pytest

from analytics import db, kpis, schema

D = dt.date
AS_OFS = [D(2012, 6, 30), D(2013, 3, 31), D(2013, 6, 30), D(2013, 11, 15)]


def _csv(path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"invoiceNumber": str, "customerID": str, "countryCode": str})
    for c in ["InvoiceDate", "DueDate", "SettledDate"]:
        df[c] = pd.to_datetime(df[c], format="%m/%d/%Y").dt.date
    df["cents"] = [int((Decimal(str(a)) * 100).to_integral_value(ROUND_HALF_UP)) for a in df.InvoiceAmount]
    return df


def _load_ibm(engine, path) -> None:
    """Prefer the product's loader; a few lines of pandas + bulk_insert while it has not landed."""
    try:
        from analytics.loaders import load
    except ImportError:
        load = None
    if load is not None:
        load(engine, "ibm", path)
        return
    df = _csv(path)
    customers = df.drop_duplicates("customerID")
    with engine.begin() as c:
        db.bulk_insert(c, schema.customers, pd.DataFrame({
            "id": customers.customerID, "name": "Customer " + customers.customerID,
            "country": customers.countryCode, "currency": "USD"}))
        db.bulk_insert(c, schema.invoices, pd.DataFrame({
            "id": df.invoiceNumber, "customer_id": df.customerID, "doc_type": "invoice",
            "invoice_date": df.InvoiceDate, "due_date": df.DueDate, "amount_cents": df.cents, "currency": "USD"}))
        db.bulk_insert(c, schema.receipts, pd.DataFrame({
            "id": "PAY-" + df.invoiceNumber, "customer_id": df.customerID, "receipt_date": df.SettledDate,
            "amount_cents": df.cents, "currency": "USD", "method": "eft"}))
        db.bulk_insert(c, schema.applications, pd.DataFrame({
            "receipt_id": "PAY-" + df.invoiceNumber, "invoice_id": df.invoiceNumber, "amount_cents": df.cents,
            "applied_date": df.SettledDate}))


def _figures(engine) -> dict:
    dates = kpis.month_ends(D(2012, 1, 1), D(2013, 12, 31))
    with engine.connect() as c:
        return {
            "snapshots": [kpis.snapshot(c, d) for d in AS_OFS],
            "kpi_trend": kpis.kpi_trend(c, dates),
            "aging_trend": kpis.aging_trend(c, dates),
            "roll_rates": kpis.roll_rates(c, dates),
            "provision": kpis.provision_matrix(c, D(2013, 6, 30)),
            "detail": kpis.aging_detail(c, D(2013, 6, 30)),
            "payment_days": kpis.payment_days(c, D(2013, 1, 1), D(2013, 6, 30)),
            "cei": kpis.cei(c, D(2013, 1, 1), D(2013, 6, 30)),
        }


@pytest.fixture(scope="module")
def ibm_path():
    from tests.conftest import IBM_CSV
    if not IBM_CSV.exists():
        pytest.skip(f"shared dataset absent: {IBM_CSV}")
    return IBM_CSV


@pytest.fixture(scope="module")
def ibm_figures(ibm_path, tmp_path_factory, request):
    ibm_csv = ibm_path
    out = {}
    for backend in ("duckdb", "sqlite", "postgresql"):
        if backend == "postgresql":
            url = request.getfixturevalue("pg_server").create_database(f"kpis_ibm_{uuid.uuid4().hex[:8]}")
        else:
            url = f"{backend}:///{tmp_path_factory.mktemp('ibm') / ('ledger.' + backend)}"
        engine = db.connect(url)
        try:
            _load_ibm(engine, ibm_csv)
            out[backend] = _figures(engine)
        finally:
            engine.dispose()
    return out


@pytest.mark.postgres
def test_same_numbers_on_every_backend(ibm_figures):
    ref = ibm_figures["duckdb"]
    for backend in ("sqlite", "postgresql"):
        got = ibm_figures[backend]
        for key, value in ref.items():
            if isinstance(value, pd.DataFrame):
                pd.testing.assert_frame_equal(got[key], value, check_exact=True, obj=f"{backend} {key}")
            else:
                assert got[key] == value, (backend, key)


@pytest.mark.postgres
def test_matches_pandas_from_the_csv(ibm_figures, ibm_path):
    """AR(D) = Σ amount of invoices with InvoiceDate <= D < SettledDate; current = those with DueDate >= D;
    S = Σ amount with InvoiceDate in (D − 90, D]; DSO = AR / S × 90. Days to pay for invoices settled in H1 2013
    = mean(SettledDate − InvoiceDate) (= the file's DaysToSettle), days late = mean(DaysLate)."""
    df = _csv(ibm_path)
    for d, snap in zip(AS_OFS, ibm_figures["duckdb"]["snapshots"]):
        open_ = df[(df.InvoiceDate <= d) & (df.SettledDate > d)]
        ar = int(open_.cents.sum())
        current = int(open_[open_.DueDate >= d].cents.sum())
        sales = int(df[(df.InvoiceDate > d - dt.timedelta(days=90)) & (df.InvoiceDate <= d)].cents.sum())
        assert snap["ar_total"] == ar / 100 and snap["current_total"] == current / 100
        assert snap["credit_sales"] == sales / 100
        assert snap["dso_standard"] == pytest.approx(ar / sales * 90, abs=0.005)
        assert snap["bpdso"] == pytest.approx(current / sales * 90, abs=0.005)
        assert snap["open_items"] == len(open_)
        assert sum(snap["aging"].values()) == pytest.approx(snap["ar_total"])
        assert snap["unapplied_cash"] == 0.0
    paid = df[(df.SettledDate >= D(2013, 1, 1)) & (df.SettledDate <= D(2013, 6, 30))]
    pdays = ibm_figures["duckdb"]["payment_days"]
    assert pdays["invoices"] == len(paid)
    assert pdays["avg_days_to_pay"] == pytest.approx(paid.DaysToSettle.mean())
    assert pdays["avg_days_late"] == pytest.approx(paid.DaysLate.mean())
    assert pdays["avg_days_late_weighted"] == pytest.approx((paid.DaysLate * paid.cents).sum() / paid.cents.sum())
    trend = ibm_figures["duckdb"]["kpi_trend"]
    assert trend.dso_standard.notna().all() and (trend.dso_standard > 0).all()
    aged = ibm_figures["duckdb"]["aging_trend"].groupby("as_of").open_cents.sum()
    for row in trend.itertuples():  # every trend point against pandas
        d = row.as_of
        open_ = df[(df.InvoiceDate <= d) & (df.SettledDate > d)]
        assert row.ar_cents == int(open_.cents.sum()) == aged[d]
        assert row.current_cents == int(open_[open_.DueDate >= d].cents.sum())
        assert row.over_90_cents == int(open_[[(d - x).days > 90 for x in open_.DueDate]].cents.sum())
    prov = ibm_figures["duckdb"]["provision"]
    assert prov.attrs["currency"] == "USD"
    assert (prov.loss_rate.dropna().between(0, 1)).all()
