"""Hostile input files: every bad file gives row-level errors and leaves the database exactly as it was.

Property-based (hypothesis, bounded) over :func:`analytics.loaders.load` and ``preview`` with the
generic CSV loader: random mixes of good and bad cells (impossible dates, other date formats,
broken thousands groups, huge / zero / non-numeric amounts, blank and over-long keys, duplicate
document numbers, arbitrary unicode text including formula-like cells), in UTF-8, UTF-8 with BOM,
Latin-1 and Windows-1252, with ``,`` ``;`` tab or ``|`` delimiters and ``.``/``,`` decimal marks.

Oracle: a file whose cells are all good loads and its text round-trips exactly; any other file is
refused with a ``ValidationFailed`` whose errors name rows of the file, the same rows ``preview``
reports, and the per-table checksums of the database are unchanged.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import itertools

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import loaders, schema
from analytics.errors import UserError, ValidationFailed
from tests.checksums import table_checksums

MAX_EXAMPLES = 40
_ids = itertools.count()

FORMULAS = ("=cmd|' /C calc'!A0", "+SUM(A1:A9)", "-2+3", "@SUM(1)", "=HYPERLINK(\"http://x\",\"y\")")

# (decimal, thousands) pairs the mapping can declare.
NUMBER_STYLES = ((".", ","), (",", "."), (".", None), (",", " "))
DELIMITERS = (",", ";", "\t", "|")
ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "cp1252")
# Text that survives every encoding above and the loader's encoding detection.
SAFE_TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ 0123456789äöüéèàßñÅçÿ'\"=+-@,;|()",
                    min_size=1, max_size=25)
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                   max_size=25)

BAD_DATES = ("2024-02-30", "2023-13-01", "31/12/2024", "yesterday", "2024-1-", "0000-01-01", "20240101x",
             "2024-06-31", "1e5")
BAD_AMOUNTS = ("1,23", "abc", "1e5", "0", "0.00", "99999999999999999999", "12..5", "--5", "1 2 3 4", "∞",
               "NaN", "5.5.5")
BAD_IDS = ("", "   ", "X" * 65)


def _amount_text(cents: int, decimal: str, thousands: str | None) -> str:
    sign = "-" if cents < 0 else ""
    units, frac = divmod(abs(cents), 100)
    whole = f"{units:,}".replace(",", thousands) if thousands else str(units)
    return f"{sign}{whole}{decimal}{frac:02d}"


@st.composite
def hostile_files(draw):
    n = next(_ids)
    decimal, thousands = draw(st.sampled_from(NUMBER_STYLES))
    delimiter = draw(st.sampled_from(DELIMITERS))
    encoding = draw(st.sampled_from(ENCODINGS))
    text_st = ANY_TEXT if encoding.startswith("utf-8") else SAFE_TEXT
    n_rows = draw(st.integers(1, 6))
    customers = [f"E{n}-K{i}" for i in range(draw(st.integers(1, 3)))]
    names = {c: draw(st.one_of(st.sampled_from(FORMULAS), text_st)) for c in customers}
    rows, good = [], True
    for i in range(n_rows):
        cust = draw(st.sampled_from(customers))
        doc = f"E{n}-D{i}"
        day = draw(st.dates(dt.date(2019, 1, 1), dt.date(2025, 12, 31)))
        cents = draw(st.integers(1, 10**12)) * draw(st.sampled_from([1, 1, 1, -1]))
        row = {"Cust": cust, "Doc": doc, "Date": day.isoformat(), "Amt": _amount_text(cents, decimal, thousands),
               "Name": names[cust], "Ref": draw(st.one_of(st.sampled_from(FORMULAS), text_st))}
        fault = draw(st.sampled_from(["none"] * 6 + ["date", "amount", "cust", "doc", "dup"]))
        if fault == "date":
            row["Date"] = draw(st.sampled_from(BAD_DATES))
        elif fault == "amount":
            row["Amt"] = draw(st.sampled_from(BAD_AMOUNTS))
        elif fault == "cust":
            row["Cust"] = draw(st.sampled_from(BAD_IDS))
        elif fault == "doc":
            row["Doc"] = draw(st.sampled_from(BAD_IDS))
        elif fault == "dup" and rows:
            row["Doc"] = rows[0]["Doc"]
        good = good and (fault == "none" or (fault == "dup" and not rows))
        rows.append(row)
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(["Cust", "Doc", "Date", "Amt", "Name", "Ref"])
    for r in rows:
        writer.writerow([r[k] for k in ("Cust", "Doc", "Date", "Amt", "Name", "Ref")])
    data = buf.getvalue().encode(encoding)
    mapping = {"columns": {"customer_id": "Cust", "invoice_id": "Doc", "invoice_date": "Date", "amount": "Amt",
                           "customer_name": "Name", "reference": "Ref"},
               "default_terms_days": 30, "default_currency": "EUR", "delimiter": delimiter, "decimal": decimal,
               "thousands": thousands or ""}
    return {"data": data, "mapping": mapping, "rows": rows, "good": good, "encoding": encoding}


def _stripped(value: str) -> str | None:
    value = value.strip()
    return value or None


@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=hostile_files())
def test_hostile_files_give_row_errors_and_change_nothing(duckdb_engine, case):
    engine = duckdb_engine
    before = table_checksums(engine)
    try:
        _, preview_errors = loaders.preview("csv", case["data"], mapping=case["mapping"])
    except ValidationFailed as exc:  # structural problems are raised, not listed
        preview_errors = exc.errors
    try:
        report = loaders.load(engine, "csv", case["data"], mapping=case["mapping"])
    except ValidationFailed as exc:
        assert not case["good"], f"a valid file was refused: {exc}"
        assert table_checksums(engine) == before
        last_row = len(case["rows"]) + 1
        assert exc.errors and all(2 <= e.row <= last_row and e.column and e.reason for e in exc.errors)
        assert {e.row for e in exc.errors} == {e.row for e in preview_errors}
        return
    except UserError as exc:  # pragma: no cover - would be a file-level refusal
        assert table_checksums(engine) == before
        pytest.fail(f"file-level refusal of a row-level problem: {exc}")
    assert case["good"], f"a bad file was loaded: {case['rows']}"
    assert not preview_errors
    assert report.inserted["invoices"] == len(case["rows"])
    with engine.connect() as conn:
        got = {r.id: r for r in conn.execute(sa.select(schema.invoices.c.id, schema.invoices.c.reference,
                                                       schema.customers.c.name)
                                             .join(schema.customers)
                                             .where(schema.invoices.c.id.in_([r["Doc"] for r in case["rows"]])))}
    for r in case["rows"]:
        assert got[r["Doc"]].reference == _stripped(r["Ref"])  # text round-trips exactly (stripped)
        assert got[r["Doc"]].name == (_stripped(r["Name"]) or r["Cust"])


# ------------------------------------------------------------------------------------------------
# Targeted cases
# ------------------------------------------------------------------------------------------------
MAPPING = {"columns": {"customer_id": "Cust", "invoice_id": "Doc", "invoice_date": "Date", "amount": "Amt",
                       "customer_name": "Name", "reference": "Ref"},
           "default_terms_days": 30, "default_currency": "EUR"}
HEADER = "Cust,Doc,Date,Amt,Name,Ref\r\n"


@pytest.mark.parametrize("line, column, reason", [
    ("K1,D1,2024-02-30,10.00,A,r", "Date", "date"),
    ("K1,D1,2024-01-05,99999999999999999999.99,A,r", "Amt", "too large"),
    ("K1,D1,2024-01-05,-92233720368547758.08,A,r", "Amt", "too large"),
    ("K1,D1,2024-01-05,1,234.50,A,r", "(row)", "fields"),
    ("K1,D1,2024-01-05,0,A,r", "Amt", "zero"),
    (",D1,2024-01-05,10,A,r", "Cust", "missing"),
    ("K1,,2024-01-05,10,A,r", "Doc", "missing"),
    ("K1," + "D" * 65 + ",2024-01-05,10,A,r", "Doc", "longer than 64"),
])
def test_each_bad_cell_is_a_row_error_and_nothing_changes(engine, line, column, reason):
    before = table_checksums(engine)
    with pytest.raises(ValidationFailed) as info:
        loaders.load(engine, "csv", (HEADER + line + "\r\n").encode(), mapping=MAPPING)
    assert any(e.row == 2 and e.column == column and reason in e.reason for e in info.value.errors), \
        info.value.errors
    assert table_checksums(engine) == before


def test_duplicate_key_in_file_and_conflict_with_database(duckdb_engine):
    engine = duckdb_engine
    loaders.load(engine, "csv", (HEADER + "K1,D1,2024-01-05,10.00,A,r\r\n").encode(), mapping=MAPPING)
    before = table_checksums(engine)
    with pytest.raises(ValidationFailed) as info:
        loaders.load(engine, "csv", (HEADER + "K1,D2,2024-01-05,10.00,A,r\r\nK1,D2,2024-01-06,11.00,A,r\r\n")
                     .encode(), mapping=MAPPING)
    assert [(e.row, "duplicate" in e.reason) for e in info.value.errors] == [(3, True)]
    with pytest.raises(ValidationFailed) as info:  # same id as a row already loaded, other content
        loaders.load(engine, "csv", (HEADER + "K1,D1,2024-01-05,12.00,A,r\r\n").encode(), mapping=MAPPING)
    assert info.value.errors[0].row == 2 and "conflict" in info.value.errors[0].reason
    assert table_checksums(engine) == before


@pytest.mark.parametrize("cut_after", ['"Name, 30', 'K2,D47,2024-01-', "K4,D59", '"Name, 59"'])
def test_truncated_file_is_refused_even_when_skipping_invalid_rows(duckdb_engine, cut_after):
    """Cut inside a quoted field or in the middle of the last row: refused as truncated.

    (A cut inside the last field of the last row, with no line end, is indistinguishable from a
    complete file without a final newline; such a file loads the shortened value.)"""
    lines = [f"K{i % 5},D{i},2024-01-{1 + i % 28:02d},{100 + i}.50,\"Name, {i}\",ref {i}" for i in range(60)]
    data = (HEADER + "\r\n".join(lines) + "\r\n").encode()
    data = data[: data.index(cut_after.encode()) + len(cut_after)]
    before = table_checksums(duckdb_engine)
    with pytest.raises(ValidationFailed, match="truncated"):
        loaders.load(duckdb_engine, "csv", data, mapping=MAPPING, skip_invalid=True)
    assert table_checksums(duckdb_engine) == before


@pytest.mark.parametrize("encoding", ["utf-8-sig", "latin-1", "cp1252", "utf-16"])
def test_encodings_load_the_same_text(duckdb_engine, encoding):
    name = "Müller & Søn €" if encoding != "latin-1" else "Müller & Søn ÿ"
    data = (HEADER + f"K1,D1,2024-01-05,\"1,234.50\",{name},réf\r\n").encode(encoding)
    report = loaders.load(duckdb_engine, "csv", data, mapping=MAPPING)
    assert report.inserted["invoices"] == 1
    with duckdb_engine.connect() as conn:
        assert conn.execute(sa.select(schema.customers.c.name)).scalar() == name
        assert conn.execute(sa.select(schema.invoices.c.amount_cents, schema.invoices.c.reference)).one() == \
            (123450, "réf")


def test_formula_cells_load_as_text_and_are_neutralised_on_export(duckdb_engine, tmp_path):
    """CSV/formula injection: stored verbatim, inert in the dashboard's CSV and Excel downloads."""
    from dashboard import common as ui

    lines = [f"K{i},D{i},2024-01-05,10.00,\"{f.replace(chr(34), chr(34) * 2)}\",\"{f.replace(chr(34), chr(34) * 2)}\""
             for i, f in enumerate(FORMULAS)]
    loaders.load(duckdb_engine, "csv", (HEADER + "\r\n".join(lines) + "\r\n").encode(), mapping=MAPPING)
    with duckdb_engine.connect() as conn:
        stored = dict(conn.execute(sa.select(schema.invoices.c.id, schema.invoices.c.reference)).all())
    assert [stored[f"D{i}"] for i in range(len(FORMULAS))] == list(FORMULAS)
    frame = pd.DataFrame({"invoice_id": list(stored), "reference": list(stored.values()), "n": range(len(stored))})
    text = ui.csv_bytes(frame).decode()
    parsed = list(csv.reader(io.StringIO(text)))[1:]
    assert all(row[1].startswith("'") and row[1][1:] in FORMULAS for row in parsed)
    ws = openpyxl.load_workbook(io.BytesIO(ui.excel_bytes(frame))).active
    cells = [ws.cell(row=r, column=2) for r in range(2, len(FORMULAS) + 2)]
    assert all(c.data_type == "s" for c in cells)  # text, never a formula
    assert sorted(c.value for c in cells) == sorted(FORMULAS)  # and unchanged


def test_errors_csv_of_the_cli_keeps_formula_values_inert(duckdb_engine, tmp_path):
    from analytics.cli import main as cli_main

    src = tmp_path / "bad.csv"
    src.write_bytes((HEADER + "K1,D1,=cmd|' /C calc'!A0,10.00,A,r\r\n").encode())
    mapping = tmp_path / "m.toml"
    mapping.write_text('default_terms_days = 30\ndefault_currency = "EUR"\n[columns]\ncustomer_id = "Cust"\n'
                       'invoice_id = "Doc"\ninvoice_date = "Date"\namount = "Amt"\n')
    out = tmp_path / "errors.csv"
    url = str(duckdb_engine.url)
    duckdb_engine.dispose()
    assert cli_main(["load", "csv", str(src), "--mapping", str(mapping), "--db", url, "--errors-csv", str(out)]) == 2
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["value"] == "'=cmd|' /C calc'!A0"
