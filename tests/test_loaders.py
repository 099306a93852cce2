"""Loaders: the IBM sample end to end, all-or-nothing, skip-invalid, idempotency, the HighRadius quirks, CLI.

Hand-checked figures:
* IBM sample: 2,466 invoices, 100 customers, total 147,703.18 = 14,770,318 cents; every invoice settled
  (2,466 receipts and applications, same total); 561 disputed.
* tests/fixtures/highradius_sample.csv: 30 rows, 9 customers after merging leading-zero variants
  (0200769623/200769623 ...), 9 open items (isOpen=1), 21 cleared.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from analytics import db, loaders, schema
from analytics.cli import main
from analytics.errors import RowError, UserError, ValidationFailed

FIXTURES = Path(__file__).parent / "fixtures"
HR = FIXTURES / "highradius_sample.csv"
HR_BAD = FIXTURES / "highradius_bad.csv"
D = dt.date


def counts(engine) -> dict[str, int]:
    with engine.connect() as c:
        out = {t.name: c.execute(sa.select(sa.func.count()).select_from(t)).scalar() for t in schema.LEDGER_TABLES}
    out["version"] = db.ledger_version(engine)
    return out


def scalar(engine, sql: str):
    with engine.connect() as c:
        return c.execute(sa.text(sql)).scalar()


def ibm_head(ibm_csv: Path, n: int) -> list[str]:
    """Header + first n data lines of the IBM sample (CRLF kept)."""
    return ibm_csv.read_bytes().decode().splitlines(keepends=True)[: n + 1]


def write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    p = tmp_path / name
    p.write_bytes("".join(lines).encode())
    return p


# -------------------------------------------------------------------------------------------------
# IBM
# -------------------------------------------------------------------------------------------------
def test_ibm_sample_counts_totals_and_second_load_adds_nothing(engine, ibm_csv):
    report = loaders.load(engine, "ibm", ibm_csv)
    assert report.inserted == {"customers": 100, "invoices": 2466, "receipts": 2466, "applications": 2466,
                               "disputes": 561}
    assert report.rows_read == 2466 and report.rows_inserted == 2466 and report.errors == []
    assert report.batch_id is not None and report.ledger_version == 1
    assert scalar(engine, "SELECT SUM(amount_cents) FROM invoices") == 14_770_318
    assert scalar(engine, "SELECT SUM(amount_cents) FROM receipts") == 14_770_318
    assert scalar(engine, "SELECT SUM(amount_cents) FROM applications") == 14_770_318
    assert scalar(engine, "SELECT COUNT(DISTINCT customer_id) FROM invoices") == 100
    # ids keep leading zeros; first data row: 391,0379-NEVHP,4/6/2013,0000611365,1/2/2013,2/1/2013,55.94,No,1/15/2013,Paper
    with engine.connect() as c:
        inv = c.execute(sa.select(schema.invoices).where(schema.invoices.c.id == "0000611365")).one()
        rec = c.execute(sa.select(schema.receipts).where(schema.receipts.c.remittance_ref == "0000611365")).one()
        cust = c.execute(sa.select(schema.customers).where(schema.customers.c.id == "0379-NEVHP")).one()
        batch = c.execute(sa.select(schema.import_batches)).one()
    assert (inv.customer_id, inv.invoice_date, inv.due_date, inv.amount_cents, inv.currency) == \
        ("0379-NEVHP", D(2013, 1, 2), D(2013, 2, 1), 5594, "USD")
    assert (rec.id, rec.receipt_date, rec.amount_cents, rec.method) == ("PAY-0000611365", D(2013, 1, 15), 5594, "check")
    assert (cust.country, cust.payment_terms_days, cust.paperless, cust.paperless_since) == \
        ("391", 30, True, D(2013, 4, 6))
    assert batch.file_sha256 == "f5d488eaa4c1cc843b478b6f1068c553c5394aab4b64d587e4b9ad811d845c19"
    assert batch.rows_inserted == 2466 and batch.source == "ibm"
    # Disputed rows: opened on the invoice date, resolved (customer paid) on the settled date.
    assert scalar(engine, "SELECT COUNT(*) FROM disputes WHERE outcome = 'customer_paid'") == 561
    assert scalar(engine, "SELECT COUNT(*) FROM disputes d JOIN invoices i ON i.id = d.invoice_id "
                          "WHERE d.opened_date <> i.invoice_date") == 0

    before = counts(engine)
    again = loaders.load(engine, "ibm", ibm_csv)
    assert counts(engine) == before
    assert sum(again.inserted.values()) == 0 and again.rows_duplicate == 2466 and again.already_loaded
    assert again.duplicates["invoices"] == 2466 and again.duplicates["applications"] == 2466


@pytest.mark.parametrize("line,column,value,reason", [
    ("391,0379-NEVHP,4/6/2013,0000611365,13/2/2013,2/1/2013,55.94,No,1/15/2013,Paper,13,0\r\n",
     "InvoiceDate", "13/2/2013", "not a date"),
    ("391,0379-NEVHP,4/6/2013,0000611365,1/2/2013,2/1/2013,-55.94,No,1/15/2013,Paper,13,0\r\n",
     "InvoiceAmount", "-55.94", "amount must be greater than 0"),
])
def test_bad_row_refuses_whole_file_and_changes_nothing(engine, ibm_csv, tmp_path, line, column, value, reason):
    lines = ibm_head(ibm_csv, 12)
    loaders.load(engine, "ibm", write(tmp_path, "first.csv", lines[:6]))  # something already in the ledger
    before = counts(engine)
    bad = lines[:1] + lines[6:9] + [line] + lines[9:]  # the bad line is spreadsheet row 5
    with pytest.raises(ValidationFailed) as exc:
        loaders.load(engine, "ibm", write(tmp_path, "bad.csv", bad))
    assert counts(engine) == before
    [err] = exc.value.errors
    assert (err.row, err.column, err.value) == (5, column, value) and reason in err.reason
    assert "row 5" in str(exc.value) and "nothing was loaded" in str(exc.value)


def test_skip_invalid_loads_exactly_the_valid_rows(engine, ibm_csv, tmp_path):
    lines = ibm_head(ibm_csv, 8)
    lines[3] = lines[3].replace(",No,", ",Maybe,")                       # row 4: bad Disputed flag
    lines[6] = lines[6].replace("/2013,", "/20x3,", 1)                   # row 7: bad date
    path = write(tmp_path, "mixed.csv", lines)
    report = loaders.load(engine, "ibm", path, skip_invalid=True)
    assert [(e.row, e.column) for e in report.errors] == [(4, "Disputed"), (7, "PaperlessDate")]
    assert report.rows_invalid == 2 and report.inserted["invoices"] == 6 and report.rows_inserted == 6
    bad_ids = {lines[3].split(",")[3], lines[6].split(",")[3]}
    with engine.connect() as c:
        ids = set(c.execute(sa.select(schema.invoices.c.id)).scalars())
    assert len(ids) == 6 and not ids & bad_ids
    frame = report.errors_frame()
    assert list(frame.columns) == ["row", "column", "value", "reason"] and list(frame["row"]) == [4, 7]
    # Loading the same file again (still skipping) adds nothing; fixing the rows adds exactly them.
    before = counts(engine)
    assert sum(loaders.load(engine, "ibm", path, skip_invalid=True).inserted.values()) == 0
    assert counts(engine) == before
    fixed = loaders.load(engine, "ibm", write(tmp_path, "fixed.csv", ibm_head(ibm_csv, 8)))
    assert fixed.inserted["invoices"] == 2 and fixed.rows_duplicate == 6


def test_conflicting_document_is_a_row_error(engine, ibm_csv, tmp_path):
    lines = ibm_head(ibm_csv, 4)
    loaders.load(engine, "ibm", write(tmp_path, "a.csv", lines))
    before = counts(engine)
    lines[2] = lines[2].replace(",61.74,", ",61.75,")
    with pytest.raises(ValidationFailed) as exc:
        loaders.load(engine, "ibm", write(tmp_path, "b.csv", lines))
    [err] = exc.value.errors
    assert err.row == 3 and err.column == "invoiceNumber" and "conflicts with existing invoice 0007900770" in err.reason
    assert "amount_cents 6174 in the ledger vs 6175 in the file" in err.reason
    assert counts(engine) == before


def test_truncated_file_is_refused_even_when_skipping(duckdb_engine, ibm_csv, tmp_path):
    lines = ibm_head(ibm_csv, 5)
    data = "".join(lines)
    path = write(tmp_path, "cut.csv", lines[:-1] + [lines[-1][:30]])  # transfer cut inside row 6
    with pytest.raises(ValidationFailed, match="truncated") as exc:
        loaders.load(duckdb_engine, "ibm", path, skip_invalid=True)
    assert exc.value.errors[0].row == 6
    quoted = write(tmp_path, "quote.csv", [data + '391,"0379-NEV'])
    with pytest.raises(ValidationFailed, match="truncated or corrupt"):
        loaders.load(duckdb_engine, "ibm", quoted)
    with pytest.raises(UserError, match="empty"):
        loaders.load(duckdb_engine, "ibm", b"")
    assert counts(duckdb_engine)["invoices"] == 0


def test_wrong_file_for_format(duckdb_engine):
    with pytest.raises(UserError, match="not the IBM AR sample: missing column"):
        loaders.load(duckdb_engine, "ibm", HR)
    with pytest.raises(UserError, match="file not found"):
        loaders.load(duckdb_engine, "ibm", "/nonexistent/x.csv")
    with pytest.raises(UserError, match="unknown format"):
        loaders.load(duckdb_engine, "sap", HR)


def test_preview_from_uploaded_bytes(ibm_csv):
    frame, errors = loaders.preview("ibm", ibm_csv.read_bytes(), nrows=3)
    assert errors == [] and len(frame) == 3
    assert list(frame["row"]) == [2, 3, 4] and frame.loc[0, "invoice_id"] == "0000611365"
    assert frame.loc[0, "amount_cents"] == 5594 and frame.loc[1, "dispute_opened"] == D(2013, 1, 26)


# -------------------------------------------------------------------------------------------------
# HighRadius
# -------------------------------------------------------------------------------------------------
def test_highradius_quirks(engine):
    report = loaders.load(engine, "highradius", HR)
    assert report.errors == []
    assert report.inserted == {"customers": 9, "invoices": 30, "receipts": 21, "applications": 21, "disputes": 0}
    with engine.connect() as c:
        inv = {r.id: r for r in c.execute(sa.select(schema.invoices))}
        cust = {r.id: r for r in c.execute(sa.select(schema.customers))}
        receipts = {r.id: r for r in c.execute(sa.select(schema.receipts))}
    # Leading zeros: 0200769623 and 200769623 are one customer with 5 invoices; the name is the most frequent.
    assert sum(1 for r in inv.values() if r.customer_id == "200769623") == 5
    assert "0200769623" not in cust and cust["200769623"].name == "WAL-MAR corp"
    assert cust["CCU013"].payment_terms_days == 32                     # NA32 -> 32 days
    assert cust["140105686"].payment_terms_days == 10                  # CA10 -> 10 days
    assert cust["140105686"].currency == "CAD" and cust["140105686"].business_unit == "CA02"
    assert cust["200769623"].payment_terms_days == 15                  # NAH4: observed due - baseline
    # Row 2: float ids, clear 'YYYY-MM-DD 00:00:00', due float YYYYMMDD.0, baseline float.
    r = inv["1930438491"]
    assert (r.invoice_date, r.due_date, r.amount_cents, r.reference) == (D(2020, 1, 26), D(2020, 2, 10), 5427328,
                                                                          "1930438491")
    assert receipts["PAY-1930438491"].receipt_date == D(2020, 2, 11)
    # Row 6: posting int YYYYMMDD, due 'YYYY-MM-DD', baseline 'YYYY-MM-DD 00:00:00'.
    assert (inv["1930701200"].invoice_date, inv["1930701200"].due_date) == (D(2020, 3, 30), D(2020, 4, 14))
    # Row 8: clear_date plain 'YYYY-MM-DD'.
    assert receipts["PAY-1930235881"].receipt_date == D(2020, 1, 17)
    # Open items (isOpen=1) have no receipt and no application.
    open_ids = {"1930659387", "1930701200", "1930655212", "2960629991", "1930602311", "1930672233", "1930690010",
                "1930700001", "1930650055"}
    assert not {f"PAY-{i}" for i in open_ids} & set(receipts)
    assert scalar(engine, "SELECT COUNT(*) FROM invoices i WHERE NOT EXISTS "
                          "(SELECT 1 FROM applications a WHERE a.invoice_id = i.id)") == 9
    assert sum(loaders.load(engine, "highradius", HR).inserted.values()) == 0


def test_highradius_bad_rows():
    _, errors = loaders.preview("highradius", HR_BAD)
    got = {(e.row, e.column): e.reason for e in errors}
    assert set(got) == {(12, "clear_date"), (13, "total_open_amount"), (14, "clear_date"), (15, "document type"),
                        (16, "doc_id"), (17, "total_open_amount"), (18, "due_in_date"), (19, "clear_date"),
                        (20, "cust_number")}
    assert "impossible date" in got[(12, "clear_date")]
    assert "greater than 0" in got[(13, "total_open_amount")]
    assert "first on row 2" in got[(16, "doc_id")]
    assert "before the document date" in got[(18, "due_in_date")]


def test_highradius_skip_invalid_keeps_the_ten_good_rows(duckdb_engine):
    report = loaders.load(duckdb_engine, "highradius", HR_BAD, skip_invalid=True)
    assert report.inserted["invoices"] == 10 and report.rows_invalid == 9 and len(report.errors) == 9


# -------------------------------------------------------------------------------------------------
# CLI
# -------------------------------------------------------------------------------------------------
def test_cli_load_fresh_database_then_refusal(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["load", "highradius", str(HR), "--db", url, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "loaded" and out["inserted"]["invoices"] == 30 and out["batch_id"] == 1

    assert main(["load", "highradius", str(HR), "--db", url]) == 0
    assert "Nothing new" in capsys.readouterr().out

    errors_csv = tmp_path / "errors.csv"
    assert main(["load", "highradius", str(HR_BAD), "--db", url, "--errors-csv", str(errors_csv)]) == 2
    err = capsys.readouterr().err
    assert "refused: 9 bad row(s)" in err and "row 13, column 'total_open_amount'" in err
    assert errors_csv.read_text().splitlines()[0] == "row,column,value,reason"
    assert len(errors_csv.read_text().splitlines()) == 10

    assert main(["load", "highradius", str(HR_BAD), "--db", url, "--skip-invalid", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows_invalid"] == 9 and out["rows_duplicate"] == 10 and out["inserted"]["invoices"] == 0

    assert main(["load", "csv", str(HR), "--db", url]) == 2
    assert "needs a column mapping" in capsys.readouterr().err
