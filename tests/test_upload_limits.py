"""Upload limits: a spreadsheet or CSV is bounded in size, rows and time BEFORE it is parsed.

Issue 15: a 7 MB .xlsx holding 990 MB of sheet XML ran 312 s, reached 8.9 GB and died. Here a
generated bomb (990 MB of sheet XML, about 4 MB on disk) is refused from the sizes its zip directory
declares, in a fresh process (CLI ``load`` and ``loaders.preview``, the Data page's call), with its
time and peak memory measured; with the size checks lifted the time limit still stops it. CSV files
are bounded by bytes, rows and time. Limits are environment settings (``AR_LOAD_MAX_*``).
"""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import loaders
from analytics.errors import UserError
from tests.checksums import table_checksums

ROOT = Path(__file__).resolve().parent.parent
MAPPING = {"columns": {"customer_id": "Cust", "invoice_id": "Doc", "invoice_date": "Date", "amount": "Amt"},
           "default_terms_days": 30, "default_currency": "EUR"}
MAPPING_TOML = ('default_terms_days = 30\ndefault_currency = "EUR"\n[columns]\ncustomer_id = "Cust"\n'
                'invoice_id = "Doc"\ninvoice_date = "Date"\namount = "Amt"\n')
BOMB_MB = 990


def _small_workbook() -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Cust", "Doc", "Date", "Amt"])
    ws.append(["K1", "D1", "2024-01-05", "10.00"])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def make_xlsx_bomb(path: Path, xml_mb: int = BOMB_MB) -> Path:
    """A valid .xlsx whose first sheet is ``xml_mb`` MB of XML rows, deflated to a few MB, streamed (low memory)."""
    src = zipfile.ZipFile(io.BytesIO(_small_workbook()))
    cells = b"".join(b'<c t="inlineStr"><is><t>' + v + b"</t></is></c>" for v in (b"K1", b"D1", b"2024-01-05", b"10.00"))
    chunk = (b"<row>" + cells + b"</row>") * (2**20 // (len(cells) + 11))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            if info.filename != "xl/worksheets/sheet1.xml":
                out.writestr(info.filename, src.read(info.filename))
                continue
            with out.open(info.filename, "w", force_zip64=True) as f:
                f.write(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="http://schemas'
                        b'.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row><c t="inlineStr"><is><t>Cust'
                        b'</t></is></c><c t="inlineStr"><is><t>Doc</t></is></c><c t="inlineStr"><is><t>Date</t>'
                        b'</is></c><c t="inlineStr"><is><t>Amt</t></is></c></row>')
                for _ in range(xml_mb * 2**20 // len(chunk) + 1):
                    f.write(chunk)
                f.write(b"</sheetData></worksheet>")
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return make_xlsx_bomb(tmp_path_factory.mktemp("bomb") / "bomb.xlsx")


# Peak memory from /proc's VmHWM, which starts afresh at exec: ru_maxrss survives exec, so a child forked
# from a pytest process that already holds 1.4 GB reported that 1.4 GB as its own.
MEASURE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
started = time.perf_counter()
from analytics.cli import main
rc = main(sys.argv[2:])
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - started,
                  "peak_mb": next(int(line.split()[1]) for line in open("/proc/self/status")
                                  if line.startswith("VmHWM:")) / 1024}))
"""


def _measured_cli_load(path: Path, tmp_path: Path, env: dict | None = None) -> tuple[dict, str]:
    """``python -m analytics load excel`` in a fresh process: its exit code, seconds and peak RSS."""
    mapping = tmp_path / "m.toml"
    mapping.write_text(MAPPING_TOML)
    cmd = [sys.executable, "-c", MEASURE, str(ROOT), "load", "excel", str(path), "--mapping", str(mapping),
           "--db", f"sqlite:///{tmp_path / 'cli.sqlite'}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n{path.name}: {figures}")  # the figures the README quotes (pytest -s)
    return figures, proc.stderr


def test_the_xlsx_bomb_is_refused_from_its_declared_size_in_a_fraction_of_a_second(bomb, tmp_path):
    assert bomb.stat().st_size < 8 * 2**20  # small on disk
    with zipfile.ZipFile(bomb) as zf:
        assert zf.getinfo("xl/worksheets/sheet1.xml").file_size > BOMB_MB * 2**20
    figures, stderr = _measured_cli_load(bomb, tmp_path)
    assert figures["rc"] == 2
    assert "unpacks to 99" in stderr and "AR_LOAD_MAX_XLSX_MB" in stderr and "Traceback" not in stderr
    assert figures["seconds"] < 5 and figures["peak_mb"] < 1024


def test_with_the_size_checks_lifted_the_time_limit_still_stops_the_bomb(bomb, tmp_path):
    """Defence in depth: openpyxl scans a sheet without <dimension> before the first row; the clock is
    checked on every read of compressed data, so the refusal comes on time and memory stays low."""
    figures, stderr = _measured_cli_load(bomb, tmp_path, {"AR_LOAD_MAX_XLSX_MB": "100000",
                                                          "AR_LOAD_MAX_XLSX_RATIO": "100000",
                                                          "AR_LOAD_MAX_SECONDS": "2"})
    assert figures["rc"] == 2 and "longer than 2 s" in stderr
    assert figures["seconds"] < 10 and figures["peak_mb"] < 1024


def test_the_data_page_calls_refuse_the_bomb_and_change_nothing(engine, bomb):
    """The Data page runs ``loaders.preview`` and ``loaders.load`` on the uploaded bytes: same checks."""
    data = bomb.read_bytes()
    before = table_checksums(engine)
    with pytest.raises(UserError, match="AR_LOAD_MAX_XLSX_MB"):
        loaders.preview("excel", data, MAPPING)
    with pytest.raises(UserError, match="AR_LOAD_MAX_XLSX_MB"):
        loaders.load(engine, "excel", io.BytesIO(data), MAPPING, file_name="bomb.xlsx")
    assert table_checksums(engine) == before


def test_a_part_compressed_too_many_times_is_refused(tmp_path):
    path = tmp_path / "ratio.xlsx"
    src = zipfile.ZipFile(io.BytesIO(_small_workbook()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info.filename))
        out.writestr("xl/media/padding.bin", b"\0" * (8 * 2**20))  # 8 MB -> 8 KB: within the size, not the ratio
    with pytest.raises(UserError, match=r"padding.bin is compressed [\d,]+ times.*AR_LOAD_MAX_XLSX_RATIO"):
        loaders.preview("excel", path, MAPPING)


def test_a_zip_that_understates_a_part_is_refused_not_crashed(tmp_path):
    """The declared size is a hard bound: Python's zip reader stops there and the part fails its checksum."""
    data = bytearray(_small_workbook())
    name = b"xl/worksheets/sheet1.xml"
    pos = 0
    while True:  # find the central directory entry of the sheet and lower its uncompressed size to 50 bytes
        pos = data.index(b"PK\x01\x02", pos)
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if bytes(data[pos + 46:pos + 46 + name_len]) == name:
            struct.pack_into("<I", data, pos + 24, 50)
            break
        pos += 4
    path = tmp_path / "liar.xlsx"
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="not a readable .xlsx"):
        loaders.preview("excel", path, MAPPING)


def _csv_rows(n: int) -> bytes:
    return ("Cust,Doc,Date,Amt\r\n" + "".join(f"K{i % 7},D{i},2024-01-05,{10 + i}.00\r\n" for i in range(n))).encode()


def test_csv_rows_over_the_limit_are_refused_before_anything_is_written(engine, monkeypatch):
    monkeypatch.setenv("AR_LOAD_MAX_ROWS", "1000")
    frame, errors = loaders.preview("csv", _csv_rows(1000), MAPPING)
    assert not errors
    before = table_checksums(engine)
    with pytest.raises(UserError, match=r"more than 1,000 data rows.*AR_LOAD_MAX_ROWS"):
        loaders.load(engine, "csv", _csv_rows(1001), MAPPING)
    assert table_checksums(engine) == before


@given(n=st.integers(1, 60), limit=st.integers(1, 60))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_row_limit_is_exact(monkeypatch, n, limit):
    monkeypatch.setenv("AR_LOAD_MAX_ROWS", str(limit))
    if n <= limit:
        assert len(loaders.preview("csv", _csv_rows(n), MAPPING, nrows=100)[0]) == n
    else:
        with pytest.raises(UserError, match="AR_LOAD_MAX_ROWS"):
            loaders.preview("csv", _csv_rows(n), MAPPING)


def test_a_csv_over_the_size_limit_is_refused_without_reading_it(engine, monkeypatch, tmp_path):
    monkeypatch.setenv("AR_LOAD_MAX_MB", "1")
    path = tmp_path / "big.csv"
    path.write_bytes(_csv_rows(60_000))
    assert path.stat().st_size > 2**20
    before = table_checksums(engine)
    for source in (path, path.read_bytes(), io.BytesIO(path.read_bytes())):
        with pytest.raises(UserError, match=r"the file is [\d.]+ MB, more than the 1.0 MB allowed \(AR_LOAD_MAX_MB\)"):
            loaders.load(engine, "csv", source, MAPPING, file_name="big.csv")
    assert table_checksums(engine) == before


def test_slow_parsing_is_stopped_by_the_time_limit(monkeypatch):
    monkeypatch.setenv("AR_LOAD_MAX_SECONDS", "0.001")
    with pytest.raises(UserError, match="longer than 0.001 s.*AR_LOAD_MAX_SECONDS"):
        loaders.preview("csv", _csv_rows(20_000), MAPPING)


@pytest.mark.parametrize("var, value", [("AR_LOAD_MAX_ROWS", "lots"), ("AR_LOAD_MAX_MB", "-1"),
                                        ("AR_LOAD_MAX_SECONDS", "0")])
def test_a_bad_limit_setting_is_a_clear_message(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(UserError, match=var):
        loaders.preview("csv", _csv_rows(3), MAPPING)


def test_a_yaml_alias_bomb_mapping_is_refused(tmp_path):
    """"Billion laughs": nine levels of nine aliases; a mapping never needs aliases, so they are refused."""
    lines = ['a0: &a0 "lol"'] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    bomb = "\n".join(lines) + "\ncolumns:\n  customer_id: *a9\n  invoice_id: Doc\n  invoice_date: Date\n  amount: Amt\n"
    for source in (bomb.encode(), io.BytesIO(bomb.encode())):
        with pytest.raises(UserError, match=r"aliases \(\*a0\) are not allowed"):
            loaders.load_mapping(source)
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb)
    with pytest.raises(UserError, match="not allowed"):
        loaders.preview("csv", _csv_rows(2), str(path))
    path.write_text("# " + "x" * 300_000 + "\n")
    with pytest.raises(UserError, match="a mapping file is at most"):
        loaders.load_mapping(str(path))
