"""Generic csv/excel loader with mapping files, encodings, number formats, mapping errors.

tests/fixtures/sap_fbl5n_sample.csv (Latin-1, ';', day-first dates, '1.234,56', trailing minus), by hand:
  customer 100200 Müller GmbH (EUR):
    row 2 RV 1800000101 05.01.2024  1,234.56  cleared by 1400000001 on 31.01.2024
    row 3 RV 1800000102 15.01.2024 10,000.00  cleared by 1400000001
    row 4 DG 1600000007 20.01.2024   -234.56  cleared by 1400000001  -> applied to 1800000101
    row 5 RV 1800000103 13.02.2024  2,500.00  open
    row 6 DZ (the payment itself)                                     -> ignored (doc type skip)
    => receipt 1400000001 = 1,234.56 - 234.56 + 10,000.00 = 11,000.00 on 2024-01-31
  customer 100310 Société Générale d'Équipement: row 7 DR 987.65 open, row 8 DG -87.65 open
  customer 100420 Øresund Trading A/S (DKK): row 9 RV 1,000,000.00 cleared by 2300000005 on 12.02.2024
  invoices total = 123,456 + 1,000,000 - 23,456 + 250,000 + 98,765 - 8,765 + 100,000,000 = 101,440,000 cents
tests/fixtures/oracle_ar_aging_sample.csv (UTF-8 with BOM, DD-MON-YYYY, positive amounts + type):
  INV-5001 12,345.67; CM-5002 -1,000.00 (no due date: due on its date); INV-5003 950.50;
  DM-5004 250.00 due 10-FEB + 45 ("Net 45") = 2024-03-26; INV-5005 1,234,567.89
"""
from __future__ import annotations

import datetime as dt
import io
import tomllib
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa
import yaml

from analytics import loaders, schema
from analytics.errors import UserError, ValidationFailed
from analytics.loaders._parse import normalise_id, parse_amount, parse_mixed_date

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
MAPPINGS = ROOT / "analytics" / "loaders" / "mappings"
SAP, SAP_MAP = FIXTURES / "sap_fbl5n_sample.csv", MAPPINGS / "sap_fbl5n.yaml"
ORACLE, ORACLE_MAP = FIXTURES / "oracle_ar_aging_sample.csv", MAPPINGS / "oracle_ar_aging.toml"
D = dt.date


def sap_mapping(**overrides) -> dict:
    spec = yaml.safe_load(SAP_MAP.read_text())
    spec.update(overrides)
    return spec


def oracle_mapping(**overrides) -> dict:
    spec = tomllib.loads(ORACLE_MAP.read_text())
    spec.update(overrides)
    return spec


def test_sap_fbl5n_mapping(engine):
    report = loaders.load(engine, "csv", SAP, mapping=SAP_MAP)
    assert report.errors == [] and report.rows_read == 8 and report.rows_ignored == 1 and report.rows_inserted == 7
    assert report.inserted == {"customers": 3, "invoices": 7, "receipts": 2, "applications": 4, "disputes": 0}
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.sum(schema.invoices.c.amount_cents))).scalar() == 101_440_000
        cust = {r.id: r for r in c.execute(sa.select(schema.customers))}
        inv = {r.id: r for r in c.execute(sa.select(schema.invoices))}
        rec = {r.id: r for r in c.execute(sa.select(schema.receipts))}
        apps = {(a.receipt_id, a.credit_memo_id, a.invoice_id, a.amount_cents, a.applied_date)
                for a in c.execute(sa.select(schema.applications))}
    assert cust["100200"].name == "Müller GmbH" and cust["100310"].name == "Société Générale d'Équipement"
    assert cust["100420"].currency == "DKK" and cust["100200"].business_unit == "1000"
    assert cust["100200"].payment_terms_days == 30
    assert (inv["1800000101"].invoice_date, inv["1800000101"].due_date) == (D(2024, 1, 5), D(2024, 2, 4))  # day-first
    assert inv["1600000007"].doc_type == "credit_memo" and inv["1600000007"].amount_cents == -23_456
    assert inv["1800000301"].amount_cents == 100_000_000
    assert (rec["1400000001"].amount_cents, rec["1400000001"].receipt_date, rec["1400000001"].method) == \
        (1_100_000, D(2024, 1, 31), "eft")
    assert rec["2300000005"].amount_cents == 100_000_000 and rec["2300000005"].currency == "DKK"
    assert apps == {
        (None, "1600000007", "1800000101", 23_456, D(2024, 1, 31)),
        ("1400000001", None, "1800000101", 100_000, D(2024, 1, 31)),
        ("1400000001", None, "1800000102", 1_000_000, D(2024, 1, 31)),
        ("2300000005", None, "1800000301", 100_000_000, D(2024, 2, 12)),
    }
    assert sum(loaders.load(engine, "csv", SAP, mapping=SAP_MAP).inserted.values()) == 0


def test_latin1_is_detected_without_an_encoding():
    frame, errors = loaders.preview("csv", SAP, mapping=sap_mapping(encoding=None))
    assert errors == [] and frame.loc[5, "customer_name"] == "Société Générale d'Équipement"


def test_oracle_aging_with_bom_and_positive_amounts(duckdb_engine):
    assert ORACLE.read_bytes().startswith(b"\xef\xbb\xbf")
    report = loaders.load(duckdb_engine, "csv", ORACLE, mapping=ORACLE_MAP)
    assert report.inserted["invoices"] == 5 and report.inserted["customers"] == 3 and report.inserted["receipts"] == 0
    with duckdb_engine.connect() as c:
        inv = {r.id: r for r in c.execute(sa.select(schema.invoices))}
        cust = {r.id: r for r in c.execute(sa.select(schema.customers))}
    assert {k: v.amount_cents for k, v in inv.items()} == {
        "INV-5001": 1_234_567, "CM-5002": -100_000, "INV-5003": 95_050, "DM-5004": 25_000, "INV-5005": 123_456_789}
    assert inv["CM-5002"].due_date == D(2024, 1, 20) and inv["DM-5004"].due_date == D(2024, 3, 26)
    assert inv["DM-5004"].doc_type == "debit_memo"
    assert cust["1001"].name == "Acme, Inc." and cust["2002"].name == "Café Zürich AG"
    assert cust["2002"].region == "EMEA" and cust["3003"].business_unit == "Vision Services"


def test_mapping_from_uploaded_bytes():
    frame_toml, _ = loaders.preview("csv", ORACLE.read_bytes(), mapping=ORACLE_MAP.read_bytes())
    frame_yaml, _ = loaders.preview("csv", io.BytesIO(SAP.read_bytes()), mapping=io.BytesIO(SAP_MAP.read_bytes()))
    assert len(frame_toml) == 5 and len(frame_yaml) == 7


def _write_xlsx(path: Path, rows: list[list], sheet: str = "Aging") -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Notes"
    ws.append(["this sheet is not the data"])
    data = wb.create_sheet(sheet)
    data.append(["Aging - 7 Buckets - By Amount Report"])   # row 1: title
    data.append([])                                         # row 2: blank
    for r in rows:                                          # row 3: header
        data.append(r)
    wb.save(path)


def test_excel_round_trip(duckdb_engine, tmp_path):
    header = ["Operating Unit", "Customer Name", "Customer Number", "Transaction Number", "Transaction Type",
              "Transaction Date", "Due Date", "Original Amount", "Currency", "Payment Terms", "Region"]
    rows = [
        ["Vision Operations", "Acme, Inc.", 1001, "INV-5001", "Invoice", dt.datetime(2024, 1, 15),
         dt.datetime(2024, 2, 14), 12345.67, "USD", "Net 30", "West"],
        ["Vision Operations", "Acme, Inc.", 1001, "CM-5002", "Credit Memo", dt.datetime(2024, 1, 20), None,
         1000, "USD", "Net 30", "West"],
        ["Vision Operations", "Café Zürich AG", 2002, "INV-5003", "Invoice", "03-FEB-2024", "04-MAR-2024",
         "950.50", "USD", 30, "EMEA"],
    ]
    path = tmp_path / "aging.xlsx"
    _write_xlsx(path, [header] + rows)
    mapping = oracle_mapping(sheet="Aging", header_row=3)
    report = loaders.load(duckdb_engine, "excel", path, mapping=mapping)
    assert report.inserted["invoices"] == 3 and report.errors == []
    csv_frame, _ = loaders.preview("csv", ORACLE, mapping=ORACLE_MAP)
    xl_frame, _ = loaders.preview("excel", path, mapping=mapping)
    cols = ["customer_id", "customer_name", "invoice_id", "doc_type", "invoice_date", "due_date", "amount_cents"]
    assert xl_frame[cols].to_dict("records") == csv_frame[cols].head(3).to_dict("records")
    assert list(xl_frame["row"]) == [4, 5, 6]
    # A bad cell is reported on the row a spreadsheet shows (header on row 3, so data row 2 is row 5).
    rows[1][5] = "31-FEB-2024"
    _write_xlsx(path, [header] + rows)
    with pytest.raises(ValidationFailed) as exc:
        loaders.load(duckdb_engine, "excel", path, mapping=mapping)
    assert [(e.row, e.column) for e in exc.value.errors] == [(5, "Transaction Date")]
    with pytest.raises(UserError, match="no sheet named 'Ledger'"):
        loaders.preview("excel", path, mapping=oracle_mapping(sheet="Ledger"))
    (tmp_path / "cut.xlsx").write_bytes(path.read_bytes()[:2000])
    with pytest.raises(UserError, match="not a readable .xlsx workbook"):
        loaders.preview("excel", tmp_path / "cut.xlsx", mapping=mapping)


def test_mapping_errors(tmp_path):
    with pytest.raises(UserError, match=r"names column 'Betrag' for field 'amount'.*no such column"):
        cols = {**sap_mapping()["columns"], "amount": "Betrag"}
        loaders.preview("csv", SAP, mapping=sap_mapping(columns=cols))
    cols = {k: v for k, v in sap_mapping()["columns"].items() if k != "invoice_date"}
    with pytest.raises(UserError, match=r"required field\(s\) \['invoice_date'\] unmapped"):
        loaders.preview("csv", SAP, mapping=sap_mapping(columns=cols))
    with pytest.raises(UserError, match=r"unknown field\(s\) \['amount_eur'\]"):
        loaders.preview("csv", SAP, mapping=sap_mapping(columns={**sap_mapping()["columns"], "amount_eur": "x"}))
    with pytest.raises(UserError, match=r"unknown mapping key\(s\) \['date_fmt'\]"):
        loaders.preview("csv", SAP, mapping=sap_mapping(date_fmt="%d.%m.%Y"))
    with pytest.raises(UserError, match="needs a column mapping"):
        loaders.preview("csv", SAP)
    with pytest.raises(UserError, match="mapping file not found"):
        loaders.preview("csv", SAP, mapping=tmp_path / "nope.yaml")
    (tmp_path / "bad.toml").write_text("columns = [")
    with pytest.raises(UserError, match="not valid TOML"):
        loaders.preview("csv", SAP, mapping=tmp_path / "bad.toml")


def test_unknown_doc_type_and_wrong_separators(tmp_path):
    text = SAP.read_bytes().decode("latin-1").replace(";DR;", ";XX;").replace("2.500,00", "2,500.00")
    path = tmp_path / "sap.csv"
    path.write_bytes(text.encode("latin-1"))
    _, errors = loaders.preview("csv", path, mapping=SAP_MAP)
    assert [(e.row, e.column) for e in errors] == [(5, "Amount in Doc. Curr."), (7, "Document Type")]
    assert "unknown document type" in errors[1].reason and "not a number" in errors[0].reason


def test_sign_doc_type_refuses_negative_amounts(tmp_path):
    text = ORACLE.read_bytes().decode("utf-8-sig").replace('"1,000.00"', '"-1,000.00"')
    path = tmp_path / "o.csv"
    path.write_text(text)
    _, errors = loaders.preview("csv", path, mapping=ORACLE_MAP)
    assert [(e.row, e.column) for e in errors] == [(3, "Original Amount")] and "sign: doc_type" in errors[0].reason


def test_signed_without_doc_type_column(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("cust,doc,date,amount\nK1,D1,31/01/2024,\"1,250.00\"\nK1,D2,15/02/2024,(250.00)\n")
    mapping = {"columns": {"customer_id": "cust", "invoice_id": "doc", "invoice_date": "date", "amount": "amount"},
               "date_format": "%d/%m/%Y", "default_terms_days": 45, "default_currency": "GBP"}
    frame, errors = loaders.preview("csv", path, mapping=mapping)
    assert errors == []
    assert list(frame["doc_type"]) == ["invoice", "credit_memo"] and list(frame["amount_cents"]) == [125_000, -25_000]
    assert list(frame["due_date"]) == [D(2024, 3, 16), D(2024, 2, 15)] and set(frame["currency"]) == {"GBP"}


@pytest.mark.parametrize("text,decimal,thousands,cents", [
    ("1,234.56", ".", ",", 123_456), ("1.234,56-", ",", ".", -123_456), ("(1,234.56)", ".", ",", -123_456),
    ("$ 1,234.5", ".", ",", 123_450), ("1234,565", ",", None, 123_457), ("EUR 12 345,00", ",", " ", 1_234_500),
    ("0.005", ".", ",", 1), ("-0.004", ".", ",", 0),
])
def test_parse_amount(text, decimal, thousands, cents):
    assert parse_amount(text, decimal, thousands) == cents


@pytest.mark.parametrize("text", ["1,23", "12.3.4", "abc", "", "1,2345.00", "--5"])
def test_parse_amount_refuses(text):
    with pytest.raises(ValueError):
        parse_amount(text, ".", ",")


def test_highradius_date_encodings_and_ids():
    for value in ("2020-01-26", "2020-01-26 00:00:00", "20200126", "20200126.0", 20200126, 20200126.0):
        assert parse_mixed_date(value) == D(2020, 1, 26)
    assert normalise_id("1930438491.0") == "1930438491" and normalise_id("0000611365") == "0000611365"
    assert normalise_id("1.930438491E9") == "1930438491"
    with pytest.raises(ValueError, match="impossible date"):
        parse_mixed_date("20201301")


def test_spaces_inside_digits_must_be_the_declared_thousands_separator():
    """Found by hypothesis: '1 2 3 4' was read as 1234 because every space was stripped before the check."""
    import pytest as _pytest

    from analytics.loaders._parse import parse_amount

    with _pytest.raises(ValueError):
        parse_amount("1 2 3 4")
    assert parse_amount("1 234,50 €", decimal=",", thousands=" ") == 123450
    assert parse_amount("- 5") == -500
