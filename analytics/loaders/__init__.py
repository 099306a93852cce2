"""Ledger loaders: bring an AR export into the ledger, validated, idempotent, all-or-nothing.

Formats
-------
``ibm``
    The IBM Watson "Accounts Receivable" sample (see :mod:`analytics.loaders.ibm`).
``highradius``
    The 19-column HighRadius payment-date-prediction export (see :mod:`analytics.loaders.highradius`).
``csv`` / ``excel``
    Any ledger or aging export, described by a column-mapping file in YAML or TOML (see
    :mod:`analytics.loaders.generic`; examples in ``analytics/loaders/mappings/``).

Behaviour (every format)
------------------------
* Every row is validated before anything is written; each problem is a
  :class:`analytics.errors.RowError` naming the spreadsheet row (header = row 1), the source column,
  the value and the reason.
* Default all-or-nothing: any bad row raises :class:`analytics.errors.ValidationFailed` and the
  database is unchanged. ``skip_invalid=True`` (CLI ``--skip-invalid``) loads exactly the valid rows,
  in one transaction, and reports the others in :attr:`LoadReport.errors`.
* Idempotent: rows already in the ledger with identical content are skipped, so loading a file twice
  changes nothing. A document id already present with *different* content is a row error
  ("conflicts with existing invoice ..."). Each load that inserts something records an
  ``import_batches`` row (file name, SHA-256, counts) and bumps the ledger version in the same
  transaction.

Example
-------
>>> from analytics import db, loaders
>>> engine = db.connect("sqlite://")
>>> report = loaders.load(engine, "ibm", "WA_Fn-UseC_-Accounts-Receivable.csv")   # doctest: +SKIP
>>> report.inserted["invoices"]                                                  # doctest: +SKIP
2466
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

import pandas as pd
import sqlalchemy as sa

from analytics import db
from analytics.exports import safe_csv
from analytics.errors import RowError, UserError, ValidationFailed
from analytics.loaders._core import FIELDS, LoadReport, Staged, dumps, errors_frame, validate, write
from analytics.loaders._source import Source, read_csv, read_excel, read_source

FORMATS = ("ibm", "highradius", "csv", "excel")

__all__ = ["FORMATS", "FIELDS", "LoadReport", "Staged", "stage", "preview", "load", "errors_frame",
           "load_mapping", "configure_cli"]


def load_mapping(mapping: Any):
    """Read a column-mapping file (YAML/TOML path, or an already-parsed dict). See :mod:`.generic`."""
    from analytics.loaders import generic

    return generic.load_mapping(mapping)


def stage(fmt: str, source: Source, mapping: Any = None, file_name: str | None = None) -> Staged:
    """Parse and validate a file without touching any database.

    Parameters
    ----------
    fmt : {"ibm", "highradius", "csv", "excel"}
    source : path, bytes or binary file-like (e.g. an uploaded file)
    mapping : path of a YAML/TOML mapping file, or a dict; required for ``csv`` and ``excel``.
    file_name : str, optional
        Name shown in messages and recorded in ``import_batches`` (default: from the path).

    Returns
    -------
    Staged
        Canonical rows (``.frame()``) and every row error found in the file itself
        (conflicts with the database are found by :func:`load`).
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt in ("csv", "excel") and mapping is None:
        raise UserError(f"format {fmt!r} needs a column mapping (--mapping FILE, YAML or TOML); "
                        "see analytics/loaders/mappings/ for examples")
    data, name = read_source(source, file_name)
    if fmt == "ibm":
        from analytics.loaders import ibm

        raw = read_csv(data, file_name=name)
        st = ibm.stage(raw)
    elif fmt == "highradius":
        from analytics.loaders import highradius

        raw = read_csv(data, file_name=name)
        st = highradius.stage(raw)
    else:
        from analytics.loaders import generic

        m = generic.load_mapping(mapping)
        if fmt == "csv":
            raw = read_csv(data, file_name=name, delimiter=m.delimiter, header_row=m.header_row, encoding=m.encoding)
        else:
            raw = read_excel(data, file_name=name, sheet=m.sheet, header_row=m.header_row)
        st = generic.stage(raw, m, fmt)
    st.notes.extend(raw.notes)
    validate(st)
    return st


def preview(fmt: str, source: Source, mapping: Any = None, nrows: int = 20) -> tuple[pd.DataFrame, list[RowError]]:
    """The first ``nrows`` canonical rows of a file and ALL its row errors (for the Data page).

    The whole file is parsed and validated (so the error list is complete); nothing is written and
    no database is needed, so conflicts with rows already in the ledger show up only on load.

    Parameters
    ----------
    fmt : {"ibm", "highradius", "csv", "excel"}
    source : path, bytes or binary file-like
    mapping : mapping file path or dict (``csv``/``excel``)
    nrows : int
        Rows of the preview frame.

    Returns
    -------
    (DataFrame, list of RowError)
        The frame has the columns of :data:`FIELDS` (``row`` = spreadsheet row number; money in
        ``amount_cents``); ``frame.attrs["notes"]`` lists things to check that are not errors
        (a file read as Windows-1252: which lines hold accented characters).

    Example
    -------
    >>> frame, errors = preview("ibm", "WA_Fn-UseC_-Accounts-Receivable.csv", nrows=5)  # doctest: +SKIP
    """
    st = stage(fmt, source, mapping)
    frame = st.frame().head(nrows).reset_index(drop=True)
    frame.attrs["notes"] = list(st.notes)
    return frame, sorted(st.errors, key=lambda e: e.row)


def load(engine: sa.Engine, fmt: str, source: Source, mapping: Any = None, skip_invalid: bool = False,
         file_name: str | None = None) -> LoadReport:
    """Validate a file and load it into the ledger in one transaction.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        A migrated ledger (:func:`analytics.db.connect`).
    fmt : {"ibm", "highradius", "csv", "excel"}
    source : path, bytes or binary file-like (e.g. a Streamlit ``UploadedFile``)
    mapping : mapping file path or dict; required for ``csv`` and ``excel``.
    skip_invalid : bool
        False (default): any bad row refuses the whole file. True: load exactly the valid rows and
        report the others.
    file_name : str, optional
        Name recorded in ``import_batches`` (default: from the path or file object).

    Returns
    -------
    LoadReport
        Counts inserted per table, duplicates skipped, row errors (when skipping), batch id.

    Raises
    ------
    ValidationFailed
        Some rows are bad and ``skip_invalid`` is False (or the file is truncated); nothing written.
    UserError
        Unreadable file, wrong columns, bad mapping; :class:`~analytics.errors.ReadOnlyDatabase` on a
        read-only database (before the file is read).

    Example
    -------
    >>> report = load(engine, "ibm", "WA_Fn-UseC_-Accounts-Receivable.csv")  # doctest: +SKIP
    >>> report.inserted["invoices"], report.inserted["customers"]             # doctest: +SKIP
    (2466, 100)
    """
    db.require_writable(engine, "load data")
    st = stage(fmt, source, mapping, file_name)
    rows_read = len(st.rows) + st.ignored + len({e.row for e in st.errors if e.column == "(row)"})
    return write(engine, st, skip_invalid=skip_invalid, rows_read=rows_read)


# ------------------------------------------------------------------------------------------------
# CLI: python -m analytics load FORMAT PATH [--mapping FILE] [--skip-invalid] [--errors-csv OUT] [--json]
# ------------------------------------------------------------------------------------------------
def configure_cli(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics load``."""
    parser.add_argument("format", choices=FORMATS + ("bank", "rates", "schedule"),
                        help="input format; `bank`: a bank statement (BAI2, MT940 or camt.053, detected); "
                             "`rates`: ECB daily exchange rates; `schedule`: instalment schedules")
    parser.add_argument("path", help="file to load")
    parser.add_argument("--mapping", help="column-mapping file (YAML or TOML), required for csv and excel")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="load the valid rows and report the others (default: refuse the whole file)")
    parser.add_argument("--errors-csv", metavar="OUT", help="write the row errors to this CSV file")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=run_cli)


def _write_errors(path: str | None, errors: list[RowError]) -> None:
    if path:
        frame = errors_frame(errors)
        # The values are the file's own cells: keep a formula-like one ("=cmd|...") inert in a spreadsheet.
        with open(path, "w", encoding="utf-8", newline="") as out:
            out.write(safe_csv(frame))


def _run_file_load(args: argparse.Namespace, load: Callable) -> int:
    """``python -m analytics load KIND FILE [--skip-invalid] [--json]`` for a loader that is not a ledger
    format (rates, instalment schedules): refused rows listed (nothing loaded), else the report printed.

    Parameters
    ----------
    args : argparse.Namespace
        With ``db``, ``path``, ``skip_invalid`` and ``json``.
    load : callable
        ``load(engine, path, skip_invalid=...)`` returning a report with ``summary()`` (and ``to_dict()``
        or a dataclass); raises :class:`~analytics.errors.ValidationFailed`.

    Returns
    -------
    int
        0 loaded, 2 refused.

    Example
    -------
    >>> _run_file_load(args, fx.load_rates)  # doctest: +SKIP
    """
    import dataclasses
    import json

    engine = db.connect(args.db or db.default_url())
    try:
        report = load(engine, args.path, skip_invalid=args.skip_invalid)
    except ValidationFailed as exc:
        if args.json:
            print(json.dumps({"status": "refused", "message": str(exc),
                              "errors": [dataclasses.asdict(e) for e in exc.errors]}))
        else:
            print(f"refused: {len(exc.errors)} bad row(s); nothing was loaded.", file=sys.stderr)
            for e in exc.errors[:200]:
                print(f"  {e}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    figures = report.to_dict() if hasattr(report, "to_dict") else dataclasses.asdict(report)
    print(json.dumps({"status": "loaded", **figures}) if args.json else report.summary())
    return 0


def run_cli(args) -> int:
    """Run ``python -m analytics load FORMAT PATH`` for a ledger export; returns the exit code."""
    from analytics import db

    if args.format in ("rates", "schedule"):  # not ledger rows: analytics.fx / analytics.instalments load them
        from analytics import fx, instalments

        return _run_file_load(args, fx.load_rates if args.format == "rates" else instalments.load_schedules)

    engine = db.connect(args.db or db.default_url())
    try:
        report = load(engine, args.format, args.path, mapping=args.mapping, skip_invalid=args.skip_invalid)
    except ValidationFailed as exc:
        _write_errors(args.errors_csv, exc.errors)
        if args.json:
            print(dumps({"status": "refused", "message": str(exc),
                         "errors": [dict(row=e.row, column=e.column, value=e.value, reason=e.reason)
                                    for e in exc.errors]}))
        else:
            print(f"refused: {len(exc.errors)} bad row(s) in {os.path.basename(args.path)}; nothing was loaded.",
                  file=sys.stderr)
            for e in exc.errors[:200]:
                print(f"  {e}", file=sys.stderr)
            if len(exc.errors) > 200:
                print(f"  ... and {len(exc.errors) - 200} more (use --errors-csv)", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    _write_errors(args.errors_csv, report.errors)
    if args.json:
        print(dumps({"status": "loaded", **report.to_dict()}))
    else:
        print(report.summary())
    return 0
