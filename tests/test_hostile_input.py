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


# ------------------------------------------------------------------------------------------------
# Issue 15: bad data that used to be accepted or crash. Each case: a row error naming row and column,
# or a documented rule, on all three databases.
# ------------------------------------------------------------------------------------------------
def _refused(engine, data: bytes, mapping=MAPPING, **kwargs) -> list:
    before = table_checksums(engine)
    with pytest.raises(ValidationFailed) as info:
        loaders.load(engine, "csv", data, mapping=mapping, **kwargs)
    assert table_checksums(engine) == before
    return info.value.errors


def _csv(*lines: str, header: str = HEADER) -> bytes:
    return (header + "".join(line + "\r\n" for line in lines)).encode("utf-8")


@pytest.mark.parametrize("line, column", [
    ("K1,D1,2024-01-05,10.00,Acme\x00Corp,r", "Name"),
    ("K1,D1,2024-01-05,10.00,Acme,ref\x00", "Ref"),
    ("K1\x00,D1,2024-01-05,10.00,Acme,r", "Cust"),
])
def test_nul_bytes_are_row_errors_and_never_reach_the_database(engine, line, column):
    errors = _refused(engine, _csv(line, "K2,D2,2024-01-05,11.00,Good,r"))
    assert [(e.row, e.column) for e in errors if "NUL" in e.reason] == [(2, column)], errors
    # Skipping invalid rows loads the good row only; PostgreSQL never sees the NUL (it would crash).
    report = loaders.load(engine, "csv", _csv(line, "K2,D2,2024-01-05,11.00,Good,r"), mapping=MAPPING,
                          skip_invalid=True)
    assert report.inserted["invoices"] == 1 and report.rows_invalid == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.invoices.c.id)).scalars().all() == ["D2"]


CUR_MAPPING = {**MAPPING, "columns": {**MAPPING["columns"], "currency": "Cur"}}
CUR_HEADER = "Cust,Doc,Date,Amt,Name,Ref,Cur\r\n"


@pytest.mark.parametrize("amount, currency, accepted", [
    ("EUR 100.00", "USD", False), ("100.00 EUR", "USD", False), ("€100.00", "USD", False),
    ("£100.00", "EUR", False), ("USD 100.00", "USD", True), ("$100.00", "USD", True), ("$100.00", "CAD", True),
    ("€100.00", "EUR", True), ("100.00", "GBP", True),
])
def test_a_currency_in_the_amount_must_be_the_rows_currency(engine, amount, currency, accepted):
    data = _csv(f'K1,D1,2024-01-05,"{amount}",Acme,r,{currency}', header=CUR_HEADER)
    if accepted:
        report = loaders.load(engine, "csv", data, mapping=CUR_MAPPING)
        with engine.connect() as conn:
            assert conn.execute(sa.select(schema.invoices.c.amount_cents, schema.invoices.c.currency)).one() == \
                (10000, currency)
        assert report.inserted["invoices"] == 1
    else:
        errors = _refused(engine, data, CUR_MAPPING)
        assert [(e.row, e.column) for e in errors] == [(2, "Amt")]
        assert f"currency is {currency}" in errors[0].reason


@given(mark=st.sampled_from(["EUR", "USD", "GBP", "JPY", "CAD", "€", "$", "£", "¥", ""]),
       row_currency=st.sampled_from(["EUR", "USD", "GBP", "JPY", "CAD", "CHF"]),
       before=st.booleans(), cents=st.integers(1, 10**9))
@settings(max_examples=60, deadline=None)
def test_currency_marks_are_accepted_exactly_when_they_match_the_row(mark, row_currency, before, cents):
    from analytics.loaders._parse import SYMBOL_CURRENCIES

    amount = _amount_text(cents, ".", ",")
    cell = (f"{mark} {amount}" if before else f"{amount} {mark}").strip() if len(mark) == 3 else \
        (f"{mark}{amount}" if before else f"{amount}{mark}")
    frame, errors = loaders.preview("csv", _csv(f'K1,D1,2024-01-05,"{cell}",Acme,r,{row_currency}',
                                                 header=CUR_HEADER), CUR_MAPPING)
    ok = not mark or row_currency in SYMBOL_CURRENCIES.get(mark, {mark})
    if ok:
        assert not errors and int(frame["amount_cents"][0]) == cents
    else:
        assert [(e.row, e.column) for e in errors] == [(2, "Amt")] and row_currency in errors[0].reason


@given(column=st.sampled_from(["Cust", "Doc", "Name", "Ref"]), text=st.text(alphabet="abc xyz", max_size=8),
       at=st.integers(0, 8))
@settings(max_examples=40, deadline=None)
def test_a_nul_anywhere_in_a_text_cell_is_a_row_error_naming_the_column(column, text, at):
    cells = {"Cust": "K1", "Doc": "D1", "Name": "Acme", "Ref": "r"}
    cells[column] = (text[:at] + "\x00" + text[at:]) or "\x00"
    line = f'{cells["Cust"]},{cells["Doc"]},2024-01-05,10.00,{cells["Name"]},{cells["Ref"]}'
    _, errors = loaders.preview("csv", _csv(line), MAPPING)
    assert (2, column) in [(e.row, e.column) for e in errors if "NUL" in e.reason]


def test_a_duplicated_header_of_a_used_column_is_refused_naming_it(engine):
    before = table_checksums(engine)
    data = ("Cust,Doc,Date,Amt,Name,Ref,Amt\r\nK1,D1,2024-01-05,10.00,A,r,99.00\r\n").encode()
    with pytest.raises(UserError, match=r"'Amt' 2 times \(columns D \(#4\), G \(#7\)\)"):
        loaders.load(engine, "csv", data, mapping=MAPPING)
    assert table_checksums(engine) == before
    # A repeated column the mapping does not read is harmless.
    data = ("Cust,Doc,Date,Amt,Name,Ref,Note,Note\r\nK1,D1,2024-01-05,10.00,A,r,x,y\r\n").encode()
    assert loaders.load(engine, "csv", data, mapping=MAPPING).inserted["invoices"] == 1


def test_highradius_duplicated_header_is_refused(tmp_path):
    from tests.test_loaders import HR

    lines = HR.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace("document_create_date.1", "document_create_date")
    with pytest.raises(UserError, match="'document_create_date' 2 times"):
        loaders.preview("highradius", "".join(lines).encode())


def test_one_stray_byte_in_a_utf8_file_is_refused_naming_offset_and_line(engine):
    good = "K1,D1,2024-01-05,10.00,Müller,r\r\nK2,D2,2024-01-05,11.00,Zoë,r\r\n"
    data = bytearray((HEADER + good).encode("utf-8"))
    offset = data.index(b"Zo") + 1
    data[offset] = 0xFF  # "Z\xffë": one damaged byte
    before = table_checksums(engine)
    with pytest.raises(UserError, match=rf"byte {offset} \(0xFF\) on line 3"):
        loaders.load(engine, "csv", bytes(data), mapping=MAPPING)
    assert table_checksums(engine) == before


def test_a_legacy_encoded_file_loads_with_a_note_naming_the_lines(engine):
    """No UTF-8 character anywhere: read as Windows-1252, never silently (the note lists the lines)."""
    data = (HEADER + "K1,D1,2024-01-05,10.00,Acme,r\r\nK2,D2,2024-01-05,11.00,Caf\xe9 S\xf8n,r\r\n").encode("latin-1")
    frame, errors = loaders.preview("csv", data, mapping=MAPPING)
    assert not errors and "Windows-1252" in frame.attrs["notes"][0] and "line(s) 3" in frame.attrs["notes"][0]
    report = loaders.load(engine, "csv", data, mapping=MAPPING)
    assert report.notes and "Note:" in report.summary() and report.to_dict()["notes"] == report.notes
    with engine.connect() as conn:
        assert "Café Søn" in conn.execute(sa.select(schema.customers.c.name)).scalars().all()


CLEAR_MAPPING = {**MAPPING, "columns": {**MAPPING["columns"], "clearing_date": "Clear"}}
CLEAR_HEADER = "Cust,Doc,Date,Amt,Name,Ref,Clear\r\n"


def test_a_payment_dated_before_its_invoice_is_a_row_error(engine):
    errors = _refused(engine, _csv("K1,D1,2024-03-05,10.00,A,r,2024-03-04", "K1,D2,2024-03-05,10.00,A,r,2024-03-05",
                                   header=CLEAR_HEADER), CLEAR_MAPPING)
    assert [(e.row, e.column) for e in errors] == [(2, "Clear")] and "before the document date" in errors[0].reason


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offsets=st.lists(st.integers(-20, 40), min_size=1, max_size=6))
def test_cash_is_always_somewhere_ar_unapplied_and_rollforward_agree(duckdb_engine, offsets):
    """Whatever the clearing dates: rows paid before their invoice are refused, the others load, and at every
    date invoices - receipts == AR - unapplied cash; the roll-forward ties to the open items."""
    from analytics import ledger
    from analytics.cash_app.reports import rollforward
    from analytics.kpis import ar as kpi

    n = next(_ids)
    day0 = dt.date(2024, 3, 10)
    lines = [f"H{n}K,H{n}D{i},{day0:%Y-%m-%d},{100 + i}.00,A,r,{day0 + dt.timedelta(days=o):%Y-%m-%d}"
             for i, o in enumerate(offsets)]
    report = loaders.load(duckdb_engine, "csv", _csv(*lines, header=CLEAR_HEADER), mapping=CLEAR_MAPPING,
                          skip_invalid=True)
    assert {e.row for e in report.errors} == {i + 2 for i, o in enumerate(offsets) if o < 0}
    with duckdb_engine.connect() as conn:
        for d in (day0 - dt.timedelta(days=25), day0 - dt.timedelta(days=1), day0, day0 + dt.timedelta(days=15),
                  day0 + dt.timedelta(days=45)):
            invoiced = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(schema.invoices.c.amount_cents), 0))
                                    .where(schema.invoices.c.invoice_date <= d)).scalar()
            received = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(schema.receipts.c.amount_cents), 0))
                                    .where(schema.receipts.c.receipt_date <= d)).scalar()
            ar_d = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(sa.literal_column("open_cents")), 0))
                                .select_from(ledger.open_items(d))).scalar()
            assert int(invoiced) - int(received) == int(ar_d) - int(kpi.unapplied_cash(conn, d)), d
        rf = rollforward(conn, "2024-02", "2024-05")
        assert (rf["difference_cents"] == 0).all()


@pytest.mark.parametrize("cust, reason", [
    ("K\u200b1", "U+200B"), ("K\u00a01", "U+00A0"), ("\u202eK1", "U+202E"), ("K\ufeff1", "U+FEFF"),
])
def test_invisible_characters_in_ids_are_row_errors(engine, cust, reason):
    errors = _refused(engine, _csv(f"{cust},D1,2024-01-05,10.00,A,r"))
    assert [(e.row, e.column) for e in errors] == [(2, "Cust")] and reason in errors[0].reason


def test_ids_are_nfc_so_composed_and_decomposed_accents_are_one_customer(engine):
    loaders.load(engine, "csv", _csv("Caf\u00e9,D1,2024-01-05,10.00,A,r", "Cafe\u0301,D2,2024-01-05,10.00,A,r"),
                 mapping=MAPPING)
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.customers.c.id)).scalars().all() == ["Caf\u00e9"]


@given(cust=st.text(alphabet=st.characters(categories=("Cf", "Zs", "Cc"), exclude_characters=" \t\r\n\x00,\""),
                    min_size=1, max_size=3))
@settings(max_examples=25, deadline=None)
def test_any_invisible_character_in_an_id_is_refused(cust):
    _, errors = loaders.preview("csv", _csv(f"K{cust}1,D1,2024-01-05,10.00,A,r"), mapping=MAPPING)
    assert [(e.row, e.column) for e in errors] == [(2, "Cust")]


def test_sums_at_the_per_row_maximum_stay_exact_integers_on_every_backend(engine):
    """10,000 rows at the per-row maximum (10,000,000,000.00): the KPI sums neither overflow (SQLite) nor
    turn into rounded floats; one cent more is a row error."""
    from analytics.kpis import ar as kpi
    from analytics.loaders._parse import MAX_ABS_CENTS

    top = _amount_text(MAX_ABS_CENTS, ".", None)
    rows = [f"K{i % 50},D{i},2024-01-05,{top},A,r" for i in range(10_000)]
    loaders.load(engine, "csv", _csv(*rows), mapping=MAPPING)
    with engine.connect() as conn:
        snap = kpi.snapshot(conn, dt.date(2024, 1, 31))
    assert snap["ar_total"] == 10_000 * MAX_ABS_CENTS / 100 == 1e14
    assert snap["open_items"] == 10_000
    errors = _refused(engine, _csv(f"K1,X1,2024-01-05,{_amount_text(MAX_ABS_CENTS + 1, '.', None)},A,r"))
    assert [(e.row, e.column) for e in errors] == [(2, "Amt")] and "too large" in errors[0].reason


@pytest.mark.parametrize("amount", ["1" * 40, "-" + "9" * 40, "1" * 30 + ".5", "1e308"])
def test_huge_amount_text_is_a_row_error_not_a_decimal_exception(engine, amount):
    errors = _refused(engine, _csv(f"K1,D1,2024-01-05,{amount},A,r"))
    assert [(e.row, e.column) for e in errors] == [(2, "Amt")]


@pytest.mark.parametrize("value", [1e308, -1e308, 1e40, 10**40, float("inf")])
def test_huge_excel_numbers_are_row_errors(engine, tmp_path, value):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Cust", "Doc", "Date", "Amt"])
    ws.append(["K1", "D1", dt.datetime(2024, 1, 5), value])
    path = tmp_path / "big.xlsx"
    wb.save(path)
    mapping = {"columns": {"customer_id": "Cust", "invoice_id": "Doc", "invoice_date": "Date", "amount": "Amt"},
               "default_terms_days": 30, "default_currency": "EUR"}
    before = table_checksums(engine)
    with pytest.raises(ValidationFailed) as info:
        loaders.load(engine, "excel", path, mapping=mapping)
    assert [(e.row, e.column) for e in info.value.errors] == [(2, "Amt")]
    assert table_checksums(engine) == before


def test_absurd_payment_terms_are_a_row_error(duckdb_engine):
    mapping = {**MAPPING, "columns": {**MAPPING["columns"], "terms_days": "Terms"}}
    data = _csv("K1,D1,2024-01-05,10.00,A,r," + "9" * 30, header="Cust,Doc,Date,Amt,Name,Ref,Terms\r\n")
    errors = _refused(duckdb_engine, data, mapping)
    assert [(e.row, e.column) for e in errors] == [(2, "Terms")]


def test_dunning_zip_index_keeps_formula_cells_inert(duckdb_engine):
    import zipfile

    from analytics import dunning

    payload = "=1+1"
    archive = dunning.draft_letters(duckdb_engine, [payload, "@SUM(1)"], dt.date(2024, 1, 31))
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("index.csv").decode())))
    assert [r["customer_id"] for r in rows] == ["'=1+1", "'@SUM(1)"]
    assert all(not r["skipped"].startswith(("=", "+", "-", "@")) for r in rows)


# ------------------------------------------------------------------------------------------------
# Markdown: ledger text shown through st.markdown & co. renders as the text itself
# ------------------------------------------------------------------------------------------------
def _unescape(md: str) -> str:
    import re

    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", md)


@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x0b\x0c\x1c\x1d"
                                                                                               "\x1e\x85\u2028\u2029"),
                    max_size=60))
@settings(max_examples=300, deadline=None)
def test_plain_escapes_every_markdown_construct_and_keeps_the_text(text):
    import re

    from dashboard.formatting import plain

    from dashboard.formatting import WJ

    md = plain(text)
    # Every backslash we add is a CommonMark escape and the word joiners are invisible: the text round-trips.
    assert _unescape(md).replace(WJ, "") == text.replace(WJ, "")
    unescaped = re.sub(r"\\.", "", md)
    assert not re.search(r"[\[\]<>*_~`$|]", unescaped)  # no link, image, HTML, emphasis, code, LaTeX, table
    assert not re.search(r"(?i)https?:/|www\.|\w@|:\w", md)  # no bare URL, e-mail or :shortcode: to detect
    assert not re.match(r"\s*([#>+-]|\d+[.)])", md)  # no heading, quote or list at the start


def test_plain_keeps_ordinary_names_as_they_are():
    from dashboard.formatting import plain

    for name in ("Müller & Söhne GmbH", "Acme Inc.", "O'Brien (Pty) Ltd", "CUST-0001", "Société Générale S.A."):
        assert plain(name) == name
    assert plain("a\nb") == "a b" and plain(None) == ""
    assert plain("see http://x.io or www.x.io, mail a@b.io :smile:") == \
        "see http\\:\u2060//x.io or www\u2060.x.io, mail a\u2060\\@b.io \\:\u2060smile\\:\u2060"
