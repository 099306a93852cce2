"""Statements of account on the hand-made ledger of tests/test_dunning.py.

K1, period 2024-02-01 .. 2024-06-30:
  brought forward at 2024-01-31: A1 1,000.00 (dated 01-01)                                  = 1,000.00
  documents: A4 400.00 (03-01), A2 300.00 (04-01), A3 200.00 (06-15), CM -50.00 (06-20), A5 80.00 (02-01)
  payments: A1 -250.00 (02-15), A4 -400.00 (04-10)
  carried forward = 1,000 + 400 + 300 + 200 - 50 + 80 - 250 - 400 = 1,280.00 = the ledger's open balance at 06-30.
"""
import datetime as dt
import io
import subprocess
import zipfile

import pytest
import sqlalchemy as sa

from analytics import cli, statements
from analytics.ledger import open_items, LedgerFilter
from tests.test_dunning import build

D = dt.date


@pytest.fixture
def ledger(engine):
    return build(engine)


def test_statement_ties_to_the_ledger_to_the_cent(ledger):
    st = statements.statement(ledger, "K1", D(2024, 2, 1), D(2024, 6, 30))
    assert st.brought_forward_cents == 100_000 and st.carried_forward_cents == 128_000
    assert st.totals == {"invoiced": 98_000, "credits": -5_000, "payments": -65_000, "other": 0}
    assert st.brought_forward_cents + sum(x["amount_cents"] for x in st.lines) == st.carried_forward_cents
    for day in (D(2024, 1, 31), D(2024, 6, 30)):
        oi = open_items(day, LedgerFilter(customers=("K1",)))
        with ledger.connect() as c:
            ledger_total = c.execute(sa.select(sa.func.sum(oi.c.open_cents))).scalar()
        assert ledger_total == (st.brought_forward_cents if day.month == 1 else st.carried_forward_cents)
    assert [i["document"] for i in st.open_items] == ["A1", "A5", "A2", "CM", "A3"]
    assert st.aging["120+"] == 75_000 + 8_000
    # A period that starts mid-way through A1's life: brought forward includes the 250.00 already paid.
    later = statements.statement(ledger, "K1", D(2024, 3, 1), D(2024, 3, 31))
    assert later.brought_forward_cents == 75_000 + 8_000 and later.carried_forward_cents == 75_000 + 8_000 + 40_000


def test_statement_pdf_renders_and_cli(duckdb_engine, tmp_path):
    ledger = build(duckdb_engine)
    st = statements.statement(ledger, "K1", D(2024, 2, 1), D(2024, 6, 30))
    pdf = statements.render_pdf(st)
    assert pdf.startswith(b"%PDF") and len(pdf) > 1000
    out = tmp_path / "k1.pdf"
    out.write_bytes(pdf)
    try:
        text = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True,
                              check=True).stdout
    except FileNotFoundError:
        pytest.skip("pdftotext (poppler-utils) not installed")
    assert "Kappa & Sons <Ltd>" in text and "USD 1,280.00" in text and "USD 1,000.00" in text
    blob, n = statements.statements_zip(ledger, D(2024, 2, 1), D(2024, 6, 30))
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert sorted(zf.namelist()) == [f"statement_{k}_2024-02-01_2024-06-30.pdf" for k in ("K1", "K2", "K3")]
    assert n == 3
