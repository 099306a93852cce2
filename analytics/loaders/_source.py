"""Reading an input file (path, bytes or an uploaded file object) into a table of raw cell values.

Every loader goes through :func:`read_source` then :func:`read_csv` or :func:`read_excel`, so the
same rules hold for every format:

* The file's SHA-256 is taken over the exact bytes (idempotency key of an import).
* Text encoding: a UTF-8/UTF-16 byte-order mark wins; otherwise UTF-8 is tried, then Windows-1252,
  then Latin-1 (which never fails). A mapping may force an encoding.
* Row numbers are the ones a spreadsheet shows for the file: the header is row 1 (or the mapping's
  ``header_row``), blank lines count.
* A file that ends in the middle of a row or inside a quoted field is refused as truncated, even
  with ``skip_invalid`` (a cut-off transfer should be re-sent, not half-loaded).
"""
from __future__ import annotations

import codecs
import csv
import dataclasses
import hashlib
import io
import os
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Union

from analytics.errors import RowError, UserError, ValidationFailed

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]


@dataclasses.dataclass
class RawTable:
    """Header and data rows of a file, cell values untouched (str for CSV, Python values for Excel)."""

    columns: list[str]
    rows: list[list[Any]]
    row_numbers: list[int]
    file_name: str | None
    sha256: str
    errors: list[RowError] = dataclasses.field(default_factory=list)  # structural problems (field counts)

    def records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield ``(spreadsheet_row_number, {column: value})`` for every data row."""
        cols = self.columns
        for number, row in zip(self.row_numbers, self.rows):
            yield number, dict(zip(cols, row))

    def __len__(self) -> int:
        return len(self.rows)

    def require_columns(self, columns, what: str) -> None:
        """Refuse a file that lacks any of ``columns``; ``what`` names the expected export."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise UserError(f"{self.file_name or 'input'}: not {what}: missing column(s) {missing}; "
                            f"found {self.columns}")


def read_source(source: Source, file_name: str | None = None) -> tuple[bytes, str | None]:
    """The bytes of ``source`` and a display name for it.

    Parameters
    ----------
    source : str, os.PathLike, bytes or binary file-like (e.g. a Streamlit ``UploadedFile``)
    file_name : str, optional
        Overrides the name taken from the path or the file object's ``name``.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise UserError(f"file not found: {path}")
        return path.read_bytes(), file_name or path.name
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), file_name
    if hasattr(source, "read"):
        if hasattr(source, "seek"):
            try:
                source.seek(0)
            except (OSError, ValueError):
                pass
        data = source.read()
        if isinstance(data, str):
            data = data.encode("utf-8")
        name = file_name or getattr(source, "name", None)
        return bytes(data), (Path(name).name if isinstance(name, str) else None)
    raise UserError(f"cannot read input of type {type(source).__name__}: give a path, bytes or a file object")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode(data: bytes, encoding: str | None = None) -> str:
    """Text of ``data``: forced ``encoding``, else BOM, else UTF-8, else Windows-1252, else Latin-1."""
    if encoding:
        try:
            return data.decode(encoding)
        except LookupError:
            raise UserError(f"unknown encoding {encoding!r} in the mapping") from None
        except UnicodeDecodeError as exc:
            raise UserError(f"file is not valid {encoding} (byte {exc.start}): fix the mapping's encoding") from None
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8", errors="strict")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    for enc in ("utf-8", "cp1252"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _unique_headers(raw: list[Any]) -> list[str]:
    """Header names, stripped; blanks become ``Unnamed: i``; repeats get ``.1``, ``.2`` (as pandas does)."""
    seen: dict[str, int] = {}
    out = []
    for i, value in enumerate(raw):
        name = "" if value is None else str(value).strip()
        name = name or f"Unnamed: {i}"
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        else:
            seen[name] = 0
        out.append(name)
    return out


def _blank(row: list[Any]) -> bool:
    return all(v is None or (isinstance(v, str) and not v.strip()) for v in row)


def _shape_rows(header: list[str], records: list[tuple[int, list[Any]]], truncated_tail: bool,
                source: str) -> tuple[list[list[Any]], list[int], list[RowError]]:
    """Check field counts; pad/trim rows to the header width; report rows that do not fit."""
    n = len(header)
    rows, numbers, errors = [], [], []
    for idx, (number, rec) in enumerate(records):
        if _blank(rec):
            continue
        if len(rec) < n:
            if truncated_tail and idx == len(records) - 1:
                raise ValidationFailed([RowError(number, "(row)", ",".join(map(str, rec))[:80],
                                                 f"file is truncated: the last row has {len(rec)} of {n} fields "
                                                 "and no line end; re-export or re-send the file")], source)
            errors.append(RowError(number, "(row)", ",".join(map(str, rec))[:80],
                                   f"row has {len(rec)} fields, the header has {n}"))
            continue
        if len(rec) > n:
            if not _blank(rec[n:]):
                errors.append(RowError(number, "(row)", ",".join(map(str, rec))[:80],
                                       f"row has {len(rec)} fields, the header has {n}"))
                continue
            rec = rec[:n]
        rows.append(list(rec))
        numbers.append(number)
    return rows, numbers, errors


def read_csv(data: bytes, *, file_name: str | None = None, delimiter: str = ",", header_row: int = 1,
             encoding: str | None = None) -> RawTable:
    """Parse CSV bytes into a :class:`RawTable` of strings.

    Raises
    ------
    UserError
        Empty file, header row missing.
    ValidationFailed
        The file ends inside a quoted field or in the middle of a row (truncated).
    """
    source = file_name or "input"
    text = decode(data, encoding)
    if not text.strip():
        raise UserError(f"{source}: the file is empty")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records: list[list[str]] = []
    try:
        for rec in reader:
            records.append(rec)
    except csv.Error as exc:
        raise ValidationFailed([RowError(len(records) + 1, "(file)", "",
                                         f"unreadable CSV ({exc}): the file looks truncated or corrupt "
                                         "(a quoted field never ends)")], source) from None
    if len(records) < header_row or _blank(records[header_row - 1]):
        raise UserError(f"{source}: no header found on row {header_row}")
    header = _unique_headers(records[header_row - 1])
    body = [(header_row + 1 + i, rec) for i, rec in enumerate(records[header_row:])]
    truncated_tail = not text.endswith(("\n", "\r"))
    rows, numbers, errors = _shape_rows(header, body, truncated_tail, source)
    return RawTable(header, rows, numbers, file_name, sha256(data), errors)


def read_excel(data: bytes, *, file_name: str | None = None, sheet: str | int | None = None,
               header_row: int = 1) -> RawTable:
    """Read one sheet of an ``.xlsx`` workbook into a :class:`RawTable` (cells keep their Python types).

    Parameters
    ----------
    sheet : str or int, optional
        Sheet name, or 0-based index; default the first sheet.
    """
    import openpyxl

    source = file_name or "input"
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise UserError(f"{source}: not a readable .xlsx workbook (truncated or corrupt?): {exc}") from None
    try:
        if sheet is None:
            ws = wb.worksheets[0]
        elif isinstance(sheet, int):
            if not 0 <= sheet < len(wb.worksheets):
                raise UserError(f"{source}: no sheet number {sheet}; sheets are {wb.sheetnames}")
            ws = wb.worksheets[sheet]
        else:
            if sheet not in wb.sheetnames:
                raise UserError(f"{source}: no sheet named {sheet!r}; sheets are {wb.sheetnames}")
            ws = wb[sheet]
        records = []
        for number, row in enumerate(ws.iter_rows(values_only=True), start=1):
            records.append((number, [("" if v is None else (v.strip() if isinstance(v, str) else v)) for v in row]))
    finally:
        wb.close()
    by_number = dict(records)
    if header_row not in by_number or _blank(by_number[header_row]):
        raise UserError(f"{source}: no header found on row {header_row}")
    header = _unique_headers(by_number[header_row])
    # Trailing empty cells of the header row are not columns.
    while header and header[-1].startswith("Unnamed: "):
        header.pop()
    width = len(header)
    body = [(n, r + [""] * (width - len(r))) for n, r in records if n > header_row]  # cells left empty
    rows, numbers, errors = _shape_rows(header, body, False, source)
    return RawTable(header, rows, numbers, file_name, sha256(data), errors)
