"""Backup and restore of the whole ledger: every table, including the audit log and the users.

``python -m analytics export --db URL OUT.zip`` writes one Parquet file per table into a zip with
a ``manifest.json`` (format version, schema revision, and per table: row count, SHA-256 of the
Parquet file, SHA-256 of the table's content). ``python -m analytics import --db URL IN.zip``
restores it, losslessly, into an EMPTY ledger on any backend (DuckDB, SQLite, PostgreSQL), so it
also moves a ledger between databases.

Guarantees
----------
* **One transaction.** An import writes everything or nothing: the archive is checked (manifest,
  file hashes, schema revision) before anything is written; after writing, the content checksum of
  every table is recomputed inside the same transaction and compared with the manifest, and any
  difference rolls the whole import back.
* **Empty target.** A database that already holds rows is refused unless ``replace=True``
  (CLI ``--replace``), which empties every table but the audit log in the same transaction first
  (DuckDB: tables are dropped and re-created from their own catalog DDL, because DuckDB cannot delete
  parent rows whose children were deleted in the same transaction; elsewhere rows are deleted
  children first).
* **The audit log is never emptied.** Backups carry the hash chain (``audit_log.prev_hash/row_hash``)
  and the import checks it before writing anything: a backup whose chain is broken (an edited
  ``audit_log.parquet``, even with recomputed manifest checksums) is refused unless ``force=True``
  (CLI ``--force``). Into a database whose audit log is empty the backup's log is restored as it is
  (ids and hashes; the chain continues from it). Into one that has an audit log (``--replace``),
  that log is kept: the backup's rows the log already holds (same position, same hash: a backup of
  this same database) are skipped, the others are appended after it as new chained rows (their
  time, actor, action and content kept). Every import but a verbatim restore into an empty log
  (which stays an exact copy of the source) then appends an ``import_replace`` / ``import_forced`` /
  ``import`` entry: who, when, the file and its SHA-256, the backup's
  chain head, row counts before and after per table, the chain problem when forced.
* **Older backups.** Revisions 0002/0003 (no hash columns) import too: their audit rows are chained
  on import.
* **Ids.** Integer ids are restored as they were and the id sequences (PostgreSQL, DuckDB) are
  advanced past them, so later inserts do not collide. SQLite uses the rowid (nothing to do).
* **Ledger version.** Restored as exported; after a ``--replace`` it is raised above the target's
  previous version so cached results of the old ledger are never served.
* **Consistent export.** The export reads every table in one transaction (a snapshot on
  PostgreSQL/DuckDB), into a temporary file renamed into place only when complete.

The content checksum of a table is the SHA-256 of its rows, each normalised to backend-independent
text (dates ISO, datetimes to the microsecond, booleans 0/1, floats to 12 significant digits) and
sorted, so it is equal on every backend for the same rows.

Example
-------
>>> from analytics import db, backup
>>> src = db.connect("sqlite://")
>>> manifest = backup.export_ledger(src, "/tmp/ledger.zip")      # doctest: +SKIP
>>> backup.import_ledger(db.connect("duckdb:///copy.db"), "/tmp/ledger.zip")["rows"]["invoices"]  # doctest: +SKIP
0
"""
from __future__ import annotations

import argparse
import datetime as dt
import decimal
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from analytics import audit, db, schema, summaries
from analytics.errors import UserError

FORMAT = "ar-ledger-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_BATCH = 50_000
#: Older schema revisions whose backups a database at the key revision imports as they are: the tables
#: and columns are the same (0003 only widened DuckDB's 4-byte float columns to 8 bytes).
_HEAD_REVISION = "0010"
#: 0005: triggers and an index only; 0009: indexes only; 0010: the derived settlement summary, which backups
#: leave out (rebuilt after a restore).
COMPATIBLE_REVISIONS = {_HEAD_REVISION: ("0009", "0008", "0007", "0006", "0005", "0004", "0003", "0002")}
#: Columns that backups of those older revisions lack (filled on import: defaults, or the chain computed).
ADDED_COLUMNS = {"audit_log": {"prev_hash", "row_hash"}, "users": {"must_change_password"},
                 "customers": {"email"},
                 "receipts": {"payer_name", "payer_account", "bank_reference", "statement_id"}}  # 0007
#: Tables that databases and backups of those older revisions do not have (0006's dunning history): not
#: exported from such a database, restored empty from such a backup.
ADDED_TABLES = {"dunning_blocks", "dunning_runs", "dunning_notices", "dunning_notice_items",
                "bank_statements", "bank_lines",  # 0007
                "exchange_rates", "invoice_instalments"}  # 0008: rates and instalment schedules

#: Tables in foreign-key order (parents first).
TABLES: tuple[sa.Table, ...] = tuple(t for t in schema.metadata.sorted_tables if t in schema.LEDGER_TABLES)


# ------------------------------------------------------------------------------------------------
# Types and checksums
# ------------------------------------------------------------------------------------------------
def _arrow_type(column: sa.Column) -> pa.DataType:
    t = column.type
    if isinstance(t, sa.Boolean):
        return pa.bool_()
    if isinstance(t, sa.DateTime):
        return pa.timestamp("us")
    if isinstance(t, sa.Date):
        return pa.date32()
    if isinstance(t, sa.Integer):  # Integer, BigInteger
        return pa.int64()
    if isinstance(t, sa.Float):
        return pa.float64()
    return pa.string()


def _arrow_schema(columns) -> pa.Schema:
    return pa.schema([pa.field(c.name, _arrow_type(c), nullable=True) for c in columns])


def _norm(value) -> str:
    if value is None:
        return "\x00NULL"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (float, decimal.Decimal)):
        return format(float(value), ".12g")
    return str(value)


class _Digest:
    """Order-independent content hash: rows are collected normalised, sorted, then hashed."""

    def __init__(self):
        self.rows: list[str] = []

    def add(self, row) -> None:
        self.rows.append("\x1f".join(_norm(v) for v in row))

    def hexdigest(self) -> str:
        h = hashlib.sha256()
        for r in sorted(self.rows):
            h.update(r.encode("utf-8", "surrogatepass"))
            h.update(b"\x1e")
        return h.hexdigest()


def table_checksum(conn: sa.Connection, table: sa.Table, columns: list[str] | None = None) -> tuple[int, str]:
    """``(row count, content SHA-256)`` of one table, equal on every backend for the same rows.

    Parameters
    ----------
    conn : sqlalchemy.Connection
    table : sqlalchemy.Table
    columns : list of str, optional
        Only these columns (a backup of an older revision lacks the newer ones).

    Returns
    -------
    (int, str)

    Example
    -------
    >>> with db.connect("sqlite://").connect() as conn:
    ...     table_checksum(conn, schema.invoices)[0]
    0
    """
    digest = _Digest()
    result = conn.execute(sa.select(*[c for c in table.c if columns is None or c.name in columns]))
    n = 0
    while rows := result.fetchmany(_BATCH):
        for row in rows:
            digest.add(row)
        n += len(rows)
    return n, digest.hexdigest()


def _schema_revision(conn: sa.Connection) -> str | None:
    try:
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.DBAPIError:
        return None


# ------------------------------------------------------------------------------------------------
# Export
# ------------------------------------------------------------------------------------------------
def _table_parquet(conn: sa.Connection, table: sa.Table, revision: str | None) -> tuple[bytes, int, str]:
    older = revision in COMPATIBLE_REVISIONS.get(_HEAD_REVISION, ())  # a database not yet migrated to 0004
    if older and ADDED_COLUMNS.get(table.name):  # leave out only the added columns this database lacks
        # the result's keys, not the inspector: duckdb_engine's column reflection fails on DuckDB 1.x
        present = set(conn.execute(sa.text(f'SELECT * FROM "{table.name}" WHERE 1 = 0')).keys())
        columns = [c for c in table.c if c.name in present or c.name not in ADDED_COLUMNS[table.name]]
    else:
        columns = list(table.c)
    arrow_schema = _arrow_schema(columns)
    names = [c.name for c in columns]
    buf = io.BytesIO()
    digest = _Digest()
    n = 0
    with pq.ParquetWriter(buf, arrow_schema, compression="zstd") as writer:
        result = conn.execute(sa.select(*columns))
        while rows := result.fetchmany(_BATCH):
            cols = list(zip(*rows))
            for row in rows:
                digest.add(row)
            arrays = []
            for name, values, field in zip(names, cols, arrow_schema):
                if field.type == pa.float64():
                    values = [None if v is None else float(v) for v in values]
                arrays.append(pa.array(values, type=field.type))
            writer.write_batch(pa.record_batch(arrays, schema=arrow_schema))
            n += len(rows)
        if n == 0:
            writer.write_table(arrow_schema.empty_table())
    return buf.getvalue(), n, digest.hexdigest()


def export_ledger(engine: sa.Engine, out: str | os.PathLike, user=None) -> dict:
    """Write every ledger table (audit log and users included) to a zip of Parquet files.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        A migrated ledger.
    out : path
        The zip file to write (replaced atomically when complete).
    user : analytics.auth.User, optional
        When given, must be allowed to ``export`` (the dashboard passes the signed-in user).

    Returns
    -------
    dict
        The manifest: ``format``, ``format_version``, ``schema_revision``, ``exported_at``,
        ``source_dialect`` and ``tables`` {name: {rows, sha256, content_sha256, file}}.

    Example
    -------
    >>> export_ledger(db.connect("sqlite://"), "/tmp/empty.zip")["tables"]["invoices"]["rows"]  # doctest: +SKIP
    0
    """
    if user is not None:
        from analytics.auth import require

        require(user, "export")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    manifest: dict = {"format": FORMAT, "format_version": FORMAT_VERSION,
                      "exported_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat(),
                      "source_dialect": engine.dialect.name, "tables": {}}
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin(), zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
                manifest["schema_revision"] = _schema_revision(conn)
                older = manifest["schema_revision"] in COMPATIBLE_REVISIONS.get(_HEAD_REVISION, ())
                present = set(sa.inspect(conn).get_table_names()) if older else set()
                for table in TABLES:
                    if older and table.name in ADDED_TABLES and table.name not in present:
                        continue  # (a 0006 database has the dunning tables but not 0008's)
                    data, n, content = _table_parquet(conn, table, manifest["schema_revision"])
                    name = f"{table.name}.parquet"
                    zf.writestr(name, data)
                    manifest["tables"][table.name] = {"file": name, "rows": n,
                                                      "sha256": hashlib.sha256(data).hexdigest(),
                                                      "content_sha256": content}
                zf.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return manifest


# ------------------------------------------------------------------------------------------------
# Import
# ------------------------------------------------------------------------------------------------
def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of a backup file, after checking it is one.

    Raises
    ------
    UserError
        Not a zip, no manifest, another format, or a newer format version.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"backup file not found: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(zf.read(MANIFEST))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise UserError(f"{path.name} is not a ledger backup (unreadable zip or manifest: {exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{path.name} is not a ledger backup made by `python -m analytics export`")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path.name}: backup format version {manifest.get('format_version')} is not supported "
                        f"(this version reads {FORMAT_VERSION})")
    return manifest


def _read_tables(path: Path, manifest: dict) -> dict[str, pa.Table]:
    out = {}
    with zipfile.ZipFile(path) as zf:
        for table in TABLES:
            entry = manifest["tables"].get(table.name)
            if entry is None and table.name in ADDED_TABLES:
                revision = manifest.get("schema_revision")
                if revision not in COMPATIBLE_REVISIONS.get(_HEAD_REVISION, ()):
                    raise UserError(f"{path.name} was exported at schema revision {revision}, which this version "
                                    f"cannot read: migrate it to {_HEAD_REVISION} first")
                out[table.name] = _arrow_schema(list(table.c)).empty_table()
                continue
            if entry is None:
                raise UserError(f"{path.name}: the backup has no table {table.name!r}")
            try:
                data = zf.read(entry["file"])
            except (KeyError, zipfile.BadZipFile, OSError) as exc:
                raise UserError(f"{path.name}: cannot read {entry.get('file')!r} ({exc})") from None
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise UserError(f"{path.name}: {entry['file']} is corrupted (checksum mismatch); nothing was imported")
            tbl = pq.read_table(io.BytesIO(data))
            if tbl.num_rows != entry["rows"]:
                raise UserError(f"{path.name}: {table.name} has {tbl.num_rows} rows, the manifest says {entry['rows']}")
            missing = set(table.c.keys()) - set(tbl.column_names) - ADDED_COLUMNS.get(table.name, set())
            if missing:
                raise UserError(f"{path.name}: {table.name} lacks column(s) {sorted(missing)}")
            out[table.name] = tbl
    return out


def _frame(table: sa.Table, tbl: pa.Table) -> pd.DataFrame:
    """Typed frame for :func:`analytics.db.bulk_insert`: exact integers, Python dates/datetimes."""
    cols = {}
    for c in table.c:
        if c.name not in tbl.column_names:  # an older backup (ADDED_COLUMNS): the default applies
            continue
        values = tbl.column(c.name).to_pylist()
        if all(v is None for v in values) and (c.server_default is not None or c.primary_key):
            continue  # (cannot happen for NOT NULL columns) let the default apply
        if isinstance(c.type, sa.Boolean):
            cols[c.name] = pd.array(values, dtype="boolean")
        elif isinstance(c.type, sa.Integer):
            cols[c.name] = pd.array(values, dtype="Int64")
        elif isinstance(c.type, sa.Float):
            cols[c.name] = pd.array(values, dtype="Float64")
        else:
            cols[c.name] = pd.Series(values, dtype=object)
    frame = pd.DataFrame(cols)
    # An all-NULL object column has no type for DuckDB's frame scan: leave it out (NULL applies).
    keep = [c for c in frame.columns if not (frame[c].dtype == object and frame[c].isna().all())]
    return frame[keep]


def _nonempty_tables(conn: sa.Connection) -> dict[str, int]:
    out = {}
    for t in TABLES:
        n = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
        if t is schema.audit_log:  # never emptied, so not a reason to refuse
            continue
        if t is schema.ledger_meta:  # a fresh ledger may hold version 0
            n = conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.value != "0")).scalar()
        if n:
            out[t.name] = int(n)
    return out


def _clear_all(conn: sa.Connection) -> None:
    """Empty every ledger table but the audit log inside the caller's transaction (see the module docstring)."""
    kept = [t for t in reversed(TABLES) if t is not schema.audit_log]
    summaries.forget(conn)
    if conn.dialect.name == "duckdb":
        db.recreate_duckdb_tables(conn, [t.name for t in kept])
        return
    for t in kept:
        conn.execute(t.delete())


def _backup_chain(tbl: pa.Table) -> tuple[list[dict], audit.ChainReport | None]:
    """The backup's audit rows (id order) and its chain report (None: an older backup without a chain)."""
    rows = sorted(tbl.to_pylist(), key=lambda r: r["id"])
    if "row_hash" not in tbl.column_names:
        return rows, None
    return rows, audit.check_rows(rows)


def _restore_audit(conn: sa.Connection, tbl: pa.Table, rows: list[dict], chain_ok: bool) -> tuple[bool, int]:
    """Bring the backup's audit rows into the kept audit log; (restored verbatim?, rows added)."""
    present = [r[0] for r in conn.execute(sa.select(schema.audit_log.c.row_hash).order_by(schema.audit_log.c.id))]
    if not present and chain_ok and rows:
        db.bulk_insert(conn, schema.audit_log, _frame(schema.audit_log, tbl))
        last = rows[-1]
        conn.execute(schema.audit_head.update().where(schema.audit_head.c.name == audit.HEAD_NAME)
                     .values(last_id=last["id"], last_hash=last["row_hash"], row_count=len(rows)))
        return True, len(rows)
    same = 0
    while same < min(len(present), len(rows)) and rows[same].get("row_hash") == present[same]:
        same += 1
    return False, audit.append_rows(conn, rows[same:])


def _advance_sequences(conn: sa.Connection) -> None:
    """Move each id sequence past the largest id now in its table (PostgreSQL, DuckDB)."""
    dialect = conn.dialect.name
    if dialect not in ("postgresql", "duckdb"):
        return
    for t in TABLES:
        if "id" not in t.c or not isinstance(t.c.id.type, sa.Integer) or t.c.id.default is None:
            continue
        seq = f"{t.name}_id_seq"
        top = conn.execute(sa.select(sa.func.max(t.c.id))).scalar()
        if top is None:
            continue
        if dialect == "postgresql":
            conn.execute(sa.text("SELECT setval(CAST(:seq AS regclass), :top, true)"), {"seq": seq, "top": int(top)})
            continue
        last = conn.execute(sa.text("SELECT last_value FROM duckdb_sequences() WHERE sequence_name = :seq"),
                            {"seq": seq}).scalar()
        need = int(top) - int(last or 0)
        if need > 0:  # DuckDB has no setval: draw the missing values in one statement
            conn.execute(sa.text(f"SELECT max(nextval('{seq}')) FROM range({need})"))


def import_ledger(engine: sa.Engine, path: str | os.PathLike, replace: bool = False, user=None,
                  force: bool = False, actor: str | None = None) -> dict:
    """Restore a backup written by :func:`export_ledger` into ``engine``'s ledger, in one transaction.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        A migrated ledger (:func:`analytics.db.connect`), empty unless ``replace``.
    path : path
        The backup zip.
    replace : bool, default False
        Empty every table but the audit log first, in the same transaction (audited).
    user : analytics.auth.User, optional
        When given, must be allowed to ``import`` (admins).
    force : bool, default False
        Import even when the backup's audit chain is broken (audited, naming the broken row).
    actor : str, optional
        Who imports, for the audit entry (default: ``user``'s name, else ``system``).

    Returns
    -------
    dict
        ``rows`` {table: rows restored}, ``ledger_version``, ``replaced`` (bool), ``audit`` (how the
        backup's audit rows came in: ``restored`` verbatim or ``appended``, and how many).

    Raises
    ------
    UserError
        Not a backup, corrupted file, other schema revision, non-empty target without ``replace``,
        a broken audit chain without ``force``, or restored content that differs from the manifest
        (nothing is written in every case).

    Example
    -------
    >>> import_ledger(db.connect("sqlite://"), "/tmp/ledger.zip")["rows"]["customers"]  # doctest: +SKIP
    80
    """
    if user is not None:
        from analytics.auth import require

        require(user, "import")
    actor = actor or (user.username if user is not None else "system")
    db.require_writable(engine, "import a ledger")
    path = Path(path)
    manifest = read_manifest(path)
    tables = _read_tables(path, manifest)
    audit_rows, chain = _backup_chain(tables["audit_log"])
    if chain is not None and not chain.ok and not force:
        raise UserError(f"{path.name}: the audit log in this backup was altered: row {chain.broken_id}: "
                        f"{chain.problem}. Nothing was imported (--force imports it anyway, and records that)")
    rows: dict[str, int] = {}
    with db.bulk_write(engine) as conn:
        audit.lock_chain(conn)
        revision = _schema_revision(conn)
        if manifest.get("schema_revision") not in (revision, *COMPATIBLE_REVISIONS.get(revision, ())):
            raise UserError(f"{path.name} was exported at schema revision {manifest.get('schema_revision')}, "
                            f"this database is at {revision}: migrate both to the same version first")
        busy = _nonempty_tables(conn)
        previous_version = db.ledger_version(conn)
        if busy and not replace:
            shown = ", ".join(f"{k} ({v})" for k, v in busy.items())
            raise UserError(f"the database is not empty ({shown}); import into an empty database or use --replace")
        if busy:
            _clear_all(conn)
        else:
            conn.execute(schema.ledger_meta.delete())
        for table in TABLES:
            if table is schema.audit_log:
                continue
            frame = _frame(table, tables[table.name])
            rows[table.name] = db.bulk_insert(conn, table, frame) if len(frame) else 0
        verbatim, added = _restore_audit(conn, tables["audit_log"], audit_rows, chain is not None and chain.ok)
        rows["audit_log"] = added
        _advance_sequences(conn)
        summaries.rebuild(conn)  # derived, not in the backup: recomputed from the restored movements
        for table in TABLES:
            if table is schema.audit_log and not verbatim:
                continue  # the kept log plus the backup's rows appended after it: new ids and hashes
            entry = manifest["tables"].get(table.name)
            if entry is None:  # a table the backup's older revision did not have: restored empty
                continue
            n, content = table_checksum(conn, table, tables[table.name].column_names)
            if (n, content) != (entry["rows"], entry["content_sha256"]):
                raise UserError(f"{path.name}: restored {table.name} differs from the backup "
                                f"({n} rows vs {entry['rows']}); nothing was imported")
        forced = chain is not None and not chain.ok
        if busy or forced or not verbatim:  # only a verbatim restore into an empty log stays a pure copy
            after = {"file": path.name, "sha256": _file_sha256(path), "rows": rows,
                     "backup_audit_rows": len(audit_rows), "backup_audit_head": chain.head_hash if chain else None,
                     "audit_rows": "restored" if verbatim else "appended"}
            if forced:
                after["chain_problem"] = f"row {chain.broken_id}: {chain.problem}"
            action = "import_forced" if forced else "import_replace" if busy else "import"
            audit.append_audit(conn, actor, action, "ledger", path.name, {"rows": busy}, after)
        version = db.ledger_version(conn)
        if busy and version <= previous_version:
            t = schema.ledger_meta
            version = previous_version + 1
            conn.execute(t.delete().where(t.c.key == "ledger_version"))
            conn.execute(t.insert().values(key="ledger_version", value=str(version)))
        if busy:  # replaced: the backup's own money version may equal one the old ledger's figures were cached at
            db.mark_money_changed(conn, version)
    return {"rows": rows, "ledger_version": version, "replaced": bool(busy),
            "audit": {"mode": "restored" if verbatim else "appended", "rows": added}}


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------
def _run_export(args) -> int:
    engine = db.connect(args.db or db.default_url())
    try:
        manifest = export_ledger(engine, args.out)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps({"status": "exported", "file": str(args.out), **manifest}, indent=2, default=str))
    else:
        total = sum(e["rows"] for e in manifest["tables"].values())
        print(f"exported {total} rows from {len(manifest['tables'])} tables to {args.out}")
    return 0


def _run_import(args) -> int:
    engine = db.connect(args.db or db.default_url())
    try:
        result = import_ledger(engine, args.path, replace=args.replace, force=args.force, actor="cli")
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps({"status": "imported", **result}, indent=2))
    else:
        total = sum(result["rows"].values())
        print(f"imported {total} rows into {len(result['rows'])} tables"
              + (" (replaced the previous ledger)" if result["replaced"] else ""))
    return 0


def configure_export_cli(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics export OUT``."""
    parser.add_argument("out", help="backup file to write (.zip of Parquet files + manifest.json)")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")
    parser.set_defaults(run=_run_export)


def configure_import_cli(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m analytics import IN``."""
    parser.add_argument("path", help="backup file written by `export`")
    parser.add_argument("--replace", action="store_true",
                        help="empty a non-empty database first (users included; the audit log is kept and the "
                             "replacement recorded in it)")
    parser.add_argument("--force", action="store_true",
                        help="import even when the backup's audit chain is broken (recorded in the audit log)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=_run_import)

