"""Reading an input file (path, bytes or an uploaded file object) into a table of raw cell values.

Every loader goes through :func:`read_source` then :func:`read_csv` or :func:`read_excel`, so the
same rules hold for every format:

* The file's SHA-256 is taken over the exact bytes (idempotency key of an import).
* Text encoding: a UTF-8/UTF-16 byte-order mark wins; otherwise UTF-8 is tried, then Windows-1252,
  then Latin-1 (which never fails). A mapping may force an encoding. A file that is UTF-8 except for
  some bytes (it holds valid multi-byte UTF-8 characters *and* invalid bytes) is refused naming the
  first bad byte's offset and line; a file read as Windows-1252/Latin-1 carries a note listing the
  lines with non-ASCII characters (shown by the CLI, the load report and the Data page preview).
* Limits, checked before parsing (settings, see :class:`Limits`): file size; for ``.xlsx`` the
  uncompressed sizes the zip declares for its parts and their compression ratio (a "zip bomb" of a
  few MB that inflates to GBs of sheet XML is refused without inflating it); data rows; parsing time.
* NUL characters (byte 0) in a cell are a row error naming row and column: PostgreSQL cannot store
  them, and no real export has them. A header that repeats a column the loader reads is refused.
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
import re
import time
import zipfile
import zlib
from xml.etree.ElementTree import ParseError
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
    notes: list[str] = dataclasses.field(default_factory=list)  # things the user should know (legacy encoding)
    duplicated: dict[str, list[int]] = dataclasses.field(default_factory=dict)  # header -> 1-based positions

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
        self.refuse_duplicates(columns)

    def refuse_duplicates(self, columns) -> None:
        """Refuse a file whose header repeats one of ``columns`` (the columns the loader reads).

        Which of two ``Amount`` columns holds the amount cannot be guessed; repeated headers of columns
        the loader ignores are harmless (the later ones are named ``name.1``, ``name.2``).

        Parameters
        ----------
        columns : iterable of str
            Header names the loader reads.

        Returns
        -------
        None

        Raises
        ------
        UserError
            Naming the column, how often and where (``D (#4), G (#7)``).

        Example
        -------
        >>> read_csv(b"Amt,Amt\\n1,2\\n").refuse_duplicates(["Amt"])  # doctest: +SKIP
        UserError: input: the header names column 'Amt' 2 times (columns A (#1), B (#2)); ...
        """
        for name in dict.fromkeys(columns):
            positions = self.duplicated.get(name)
            if positions:
                where = ", ".join(f"{column_letter(p)} (#{p})" for p in positions)
                raise UserError(f"{self.file_name or 'input'}: the header names column {name!r} {len(positions)} "
                                f"times (columns {where}); the loader cannot tell which one to read: rename or "
                                "delete the extra one(s)")


def column_letter(position: int) -> str:
    """Spreadsheet letter of a 1-based column position.

    Parameters
    ----------
    position : int
        1 for the first column.

    Returns
    -------
    str

    Example
    -------
    >>> column_letter(28)
    'AB'
    """
    letters = ""
    while position > 0:
        position, rem = divmod(position - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


# ------------------------------------------------------------------------------------------------
# Limits
# ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on what one input file may cost to read; each has an environment variable.

    =============================  =========================================================  =======
    variable                       bound                                                      default
    =============================  =========================================================  =======
    ``AR_LOAD_MAX_MB``             size of the file as given (CSV or .xlsx), MB               200
    ``AR_LOAD_MAX_ROWS``           data rows (CSV and Excel)                                  300000
    ``AR_LOAD_MAX_XLSX_MB``        .xlsx: total uncompressed size its zip declares, MB        100
    ``AR_LOAD_MAX_XLSX_RATIO``     .xlsx: uncompressed / compressed size of any part > 1 MB   100
    ``AR_LOAD_MAX_SECONDS``        parsing time, seconds                                      120
    =============================  =========================================================  =======

    Measured: a workbook with 95 MB of sheet XML (171,876 rows of 10 columns) is read and checked in
    41 s with a 531 MB peak, so the 100 MB default keeps a load well under 1 GB; a typical export's
    parts compress 5-20 times.
    """

    max_bytes: int = 200 * 2**20
    max_rows: int = 300_000
    max_xlsx_bytes: int = 100 * 2**20
    max_ratio: float = 100.0
    max_seconds: float = 120.0

    @classmethod
    def from_env(cls) -> "Limits":
        """The limits from the environment (see the table above); a bad value is a :class:`UserError`.

        Returns
        -------
        Limits

        Example
        -------
        >>> Limits.from_env().max_rows  # doctest: +SKIP
        300000
        """
        def number(var: str, default: float, scale: float = 1) -> float:
            raw = os.environ.get(var, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise UserError(f"{var} must be a number, not {raw!r}") from None
            if value <= 0:
                raise UserError(f"{var} must be greater than 0")
            return value * scale

        d = cls()
        return cls(max_bytes=int(number("AR_LOAD_MAX_MB", d.max_bytes, 2**20)),
                   max_rows=int(number("AR_LOAD_MAX_ROWS", d.max_rows)),
                   max_xlsx_bytes=int(number("AR_LOAD_MAX_XLSX_MB", d.max_xlsx_bytes, 2**20)),
                   max_ratio=number("AR_LOAD_MAX_XLSX_RATIO", d.max_ratio),
                   max_seconds=number("AR_LOAD_MAX_SECONDS", d.max_seconds))


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


class _Budget:
    """Counts rows and time while a file is parsed; raises a clear :class:`UserError` past a limit."""

    def __init__(self, limits: Limits, source: str):
        self.limits, self.source = limits, source
        self.started = time.monotonic()

    def row(self, count: int) -> None:
        if count > self.limits.max_rows:
            raise UserError(f"{self.source}: more than {self.limits.max_rows:,} data rows; split the file or raise "
                            "AR_LOAD_MAX_ROWS")
        if count % 2000 == 0:
            self.clock()

    def clock(self) -> None:
        if time.monotonic() - self.started > self.limits.max_seconds:
            raise UserError(f"{self.source}: reading the file took longer than {self.limits.max_seconds:g} s; "
                            "split it or raise AR_LOAD_MAX_SECONDS")


class _TimedBytes(io.BytesIO):
    """The workbook bytes for openpyxl, checking the clock on every read of compressed data.

    openpyxl may parse a whole sheet before yielding its first row (a sheet without a ``<dimension>``
    element is scanned to find its size), so counting rows alone would not bound the time; zip reads
    happen every few KB of compressed data (at most about a megabyte of XML at the allowed ratio).
    """

    def __init__(self, data: bytes, budget: "_Budget"):
        super().__init__(data)
        self.budget = budget

    def read(self, *args):
        self.budget.clock()
        return super().read(*args)


def _check_size(size: int, source: str, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise UserError(f"{source}: the file is {_mb(size)}, more than the {_mb(limits.max_bytes)} allowed "
                        "(AR_LOAD_MAX_MB); split it")


def check_xlsx_parts(data: bytes, source: str, limits: Limits | None = None) -> None:
    """Refuse an .xlsx whose parts would inflate too far, from the sizes its zip directory declares.

    Nothing is decompressed: the central directory lists each part's compressed and uncompressed size.
    Python's zip reader never inflates a part beyond its declared size (a part that lies is cut there
    and fails its checksum), so these figures bound what parsing can cost.

    Parameters
    ----------
    data : bytes
        The workbook file.
    source : str
        Name used in the message.
    limits : Limits, optional
        Default :meth:`Limits.from_env`.

    Raises
    ------
    UserError
        Not a zip; total declared size over ``AR_LOAD_MAX_XLSX_MB``; a part over 1 MB compressed more
        than ``AR_LOAD_MAX_XLSX_RATIO`` times.

    Example
    -------
    >>> check_xlsx_parts(open("aging.xlsx", "rb").read(), "aging.xlsx")  # doctest: +SKIP
    """
    limits = limits or Limits.from_env()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            parts = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UserError(f"{source}: not a readable .xlsx workbook (truncated or corrupt?): {exc}") from None
    total = sum(p.file_size for p in parts)
    if total > limits.max_xlsx_bytes:
        biggest = max(parts, key=lambda p: p.file_size)
        raise UserError(f"{source}: the workbook unpacks to {_mb(total)} of XML ({biggest.filename}: "
                        f"{_mb(biggest.file_size)}), more than the {_mb(limits.max_xlsx_bytes)} allowed "
                        "(AR_LOAD_MAX_XLSX_MB); nothing was read. Export fewer rows, or as CSV")
    for p in parts:
        ratio = p.file_size / max(p.compress_size, 1)
        if p.file_size > 2**20 and ratio > limits.max_ratio:
            raise UserError(f"{source}: part {p.filename} is compressed {ratio:,.0f} times ({_mb(p.compress_size)} "
                            f"-> {_mb(p.file_size)}), more than the {limits.max_ratio:g} allowed "
                            "(AR_LOAD_MAX_XLSX_RATIO): it looks like a zip bomb; nothing was read")


def read_source(source: Source, file_name: str | None = None, limits: Limits | None = None) -> tuple[bytes, str | None]:
    """The bytes of ``source`` and a display name for it, refused when larger than ``AR_LOAD_MAX_MB``.

    Parameters
    ----------
    source : str, os.PathLike, bytes or binary file-like (e.g. a Streamlit ``UploadedFile``)
    file_name : str, optional
        Overrides the name taken from the path or the file object's ``name``.
    limits : Limits, optional
        Default :meth:`Limits.from_env`. A file on disk is measured before it is read.

    Returns
    -------
    (bytes, str or None)

    Example
    -------
    >>> read_source(b"a,b\\n1,2\\n", "x.csv")
    (b'a,b\\n1,2\\n', 'x.csv')
    """
    limits = limits or Limits.from_env()
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise UserError(f"file not found: {path}")
        _check_size(path.stat().st_size, file_name or path.name, limits)
        return path.read_bytes(), file_name or path.name
    if isinstance(source, (bytes, bytearray, memoryview)):
        _check_size(len(source), file_name or "input", limits)
        return bytes(source), file_name
    if hasattr(source, "read"):
        if hasattr(source, "seek"):
            try:
                source.seek(0)
            except (OSError, ValueError):
                pass
        name = file_name or getattr(source, "name", None)
        name = Path(name).name if isinstance(name, str) else None
        data = source.read(limits.max_bytes + 1)
        if isinstance(data, str):
            data = data.encode("utf-8")
        _check_size(len(data), name or "input", limits)
        return bytes(data), name
    raise UserError(f"cannot read input of type {type(source).__name__}: give a path, bytes or a file object")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# A valid multi-byte UTF-8 character (2, 3 or 4 bytes, no overlongs or surrogates).
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
                             rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
                             rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}")


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _bad_utf8(data: bytes, offset: int, label: str, first: int = 0) -> UserError:
    """The refusal of a UTF-8 file with invalid bytes, naming the first ones by offset and line."""
    text = data.decode("utf-8", errors="replace")
    count = text.count("\ufffd") - data.decode("utf-8", errors="ignore").count("\ufffd")
    where = []
    pos = offset
    while pos is not None and len(where) < 5:
        try:
            data[pos:].decode("utf-8")
            pos = None
        except UnicodeDecodeError as exc:
            at = pos + exc.start
            where.append(f"byte {at - first} (0x{data[at]:02X}) on line {_line_of(data, at)}")
            pos = at + max(exc.end - exc.start, 1)
    return UserError(f"{label}: the file is UTF-8 but {count} byte sequence(s) are not valid UTF-8: "
                     f"{'; '.join(where)}. A byte was damaged or the file mixes encodings; fix those lines "
                     "(or set the mapping's encoding) and load again")


def decode(data: bytes, encoding: str | None = None, notes: list[str] | None = None,
           source: str = "input") -> str:
    """Text of ``data``: forced ``encoding``, else BOM, else UTF-8, else Windows-1252, else Latin-1.

    Never silent about a guess: a file that holds valid multi-byte UTF-8 characters *and* invalid bytes
    is refused (:class:`UserError` naming the first bad bytes' offsets and lines); a file read as
    Windows-1252 or Latin-1 appends a note to ``notes`` naming the lines with non-ASCII characters.

    Parameters
    ----------
    data : bytes
    encoding : str, optional
        Forced by the mapping.
    notes : list of str, optional
        Receives the note about a legacy encoding.
    source : str
        Name used in messages.

    Returns
    -------
    str

    Example
    -------
    >>> notes = []
    >>> decode("Müller".encode("cp1252"), notes=notes), len(notes)
    ('Müller', 1)
    """
    if encoding:
        try:
            return data.decode(encoding)
        except LookupError:
            raise UserError(f"unknown encoding {encoding!r} in the mapping") from None
        except UnicodeDecodeError as exc:
            raise UserError(f"{source}: file is not valid {encoding} (byte {exc.start}, line "
                            f"{_line_of(data, exc.start)}): fix the mapping's encoding") from None
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8):].decode("utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            raise _bad_utf8(data, exc.start + len(codecs.BOM_UTF8), source) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise UserError(f"{source}: the file starts as UTF-16 but byte {exc.start} is not valid UTF-16") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if _UTF8_MULTIBYTE.search(data):
            raise _bad_utf8(data, exc.start, source) from None
    for enc, label in (("cp1252", "Windows-1252"), ("latin-1", "Latin-1")):
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        if notes is not None:
            lines = [i for i, line in enumerate(text.splitlines(), start=1) if not line.isascii()]
            shown = ", ".join(map(str, lines[:20])) + (f" and {len(lines) - 20} more" if len(lines) > 20 else "")
            notes.append(f"{source} is not UTF-8: read as {label}. Check the accented characters on line(s) "
                         f"{shown}; set the mapping's encoding if they look wrong.")
        return text
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def _unique_headers(raw: list[Any], source: str = "input") -> tuple[list[str], dict[str, list[int]]]:
    """Header names, stripped; blanks become ``Unnamed: i``; repeats get ``.1``, ``.2`` (as pandas does).

    Returns the names and, for every name written more than once, its 1-based column positions.
    """
    seen: dict[str, int] = {}
    positions: dict[str, list[int]] = {}
    out = []
    for i, value in enumerate(raw):
        name = "" if value is None else str(value).strip()
        if "\x00" in name:
            raise UserError(f"{source}: the header of column {column_letter(i + 1)} holds a NUL character (byte 0); "
                            "the file is damaged or not a text export")
        name = name or f"Unnamed: {i}"
        positions.setdefault(name, []).append(i + 1)
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        else:
            seen[name] = 0
        out.append(name)
    return out, {n: p for n, p in positions.items() if len(p) > 1 and not n.startswith("Unnamed: ")}


def _nul_errors(header: list[str], rows: list[list[Any]], numbers: list[int]) -> list[RowError]:
    """A row error for every cell holding a NUL character: never stored (PostgreSQL refuses them)."""
    errors = []
    for number, row in zip(numbers, rows):
        for name, value in zip(header, row):
            if isinstance(value, str) and "\x00" in value:
                errors.append(RowError(number, name, value.replace("\x00", "\\0")[:80],
                                       "contains a NUL character (byte 0); remove it"))
    return errors


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
             encoding: str | None = None, limits: Limits | None = None) -> RawTable:
    """Parse CSV bytes into a :class:`RawTable` of strings, within :class:`Limits`.

    Parameters
    ----------
    data : bytes
    file_name : str, optional
    delimiter : str
    header_row : int
        1-based.
    encoding : str, optional
        Forced encoding (else detected, see :func:`decode`).
    limits : Limits, optional
        Default :meth:`Limits.from_env`: size, rows and time.

    Returns
    -------
    RawTable

    Raises
    ------
    UserError
        Empty file, header row missing, a limit exceeded, damaged UTF-8.
    ValidationFailed
        The file ends inside a quoted field or in the middle of a row (truncated).

    Example
    -------
    >>> read_csv(b"a,b\\n1,2\\n").rows
    [['1', '2']]
    """
    source = file_name or "input"
    limits = limits or Limits.from_env()
    _check_size(len(data), source, limits)
    budget = _Budget(limits, source)
    notes: list[str] = []
    text = decode(data, encoding, notes, source)
    if not text.strip():
        raise UserError(f"{source}: the file is empty")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records: list[list[str]] = []
    try:
        for rec in reader:
            records.append(rec)
            budget.row(len(records) - header_row)
    except csv.Error as exc:
        raise ValidationFailed([RowError(len(records) + 1, "(file)", "",
                                         f"unreadable CSV ({exc}): the file looks truncated or corrupt "
                                         "(a quoted field never ends)")], source) from None
    if len(records) < header_row or _blank(records[header_row - 1]):
        raise UserError(f"{source}: no header found on row {header_row}")
    header, duplicated = _unique_headers(records[header_row - 1], source)
    body = [(header_row + 1 + i, rec) for i, rec in enumerate(records[header_row:])]
    truncated_tail = not text.endswith(("\n", "\r"))
    rows, numbers, errors = _shape_rows(header, body, truncated_tail, source)
    errors += _nul_errors(header, rows, numbers)
    return RawTable(header, rows, numbers, file_name, sha256(data), errors, notes, duplicated)


_XLSX_ERRORS = (zipfile.BadZipFile, zlib.error, KeyError, OSError, ValueError, EOFError, ParseError)


def read_excel(data: bytes, *, file_name: str | None = None, sheet: str | int | None = None,
               header_row: int = 1, limits: Limits | None = None) -> RawTable:
    """Read one sheet of an ``.xlsx`` workbook into a :class:`RawTable` (cells keep their Python types).

    The zip's declared part sizes and compression ratios are checked first (:func:`check_xlsx_parts`),
    then rows and time are counted while reading.

    Parameters
    ----------
    data : bytes
    file_name : str, optional
    sheet : str or int, optional
        Sheet name, or 0-based index; default the first sheet.
    header_row, limits
        As in :func:`read_csv`.

    Returns
    -------
    RawTable
        Cells keep their Python types (numbers, datetimes).

    Raises
    ------
    UserError
        Not a workbook, no such sheet, a limit exceeded.

    Example
    -------
    >>> read_excel(open("aging.xlsx", "rb").read(), sheet="Aging").columns  # doctest: +SKIP
    """
    import openpyxl

    source = file_name or "input"
    limits = limits or Limits.from_env()
    _check_size(len(data), source, limits)
    check_xlsx_parts(data, source, limits)
    budget = _Budget(limits, source)
    try:
        wb = openpyxl.load_workbook(_TimedBytes(data, budget), read_only=True, data_only=True)
    except _XLSX_ERRORS as exc:
        raise UserError(f"{source}: not a readable .xlsx workbook (truncated or corrupt?): {exc}") from None
    budget.clock()
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
            budget.row(number - header_row)
    except _XLSX_ERRORS as exc:  # a part that lies about its size fails its checksum here
        raise UserError(f"{source}: not a readable .xlsx workbook (damaged part?): {exc}") from None
    finally:
        wb.close()
    by_number = dict(records)
    if header_row not in by_number or _blank(by_number[header_row]):
        raise UserError(f"{source}: no header found on row {header_row}")
    header, duplicated = _unique_headers(by_number[header_row], source)
    # Trailing empty cells of the header row are not columns.
    while header and header[-1].startswith("Unnamed: "):
        header.pop()
    width = len(header)
    body = [(n, r + [""] * (width - len(r))) for n, r in records if n > header_row]  # cells left empty
    rows, numbers, errors = _shape_rows(header, body, False, source)
    errors += _nul_errors(header, rows, numbers)
    return RawTable(header, rows, numbers, file_name, sha256(data), errors, [], duplicated)
