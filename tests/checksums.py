"""Per-table checksums of a whole ledger database, for "nothing changed" and "nothing lost" assertions.

Every table of :data:`analytics.schema.LEDGER_TABLES` is read, each row is normalised to a
backend-independent text form (dates ISO, datetimes to the microsecond, booleans as 0/1, floats
with 12 significant digits, NULL as a marker), rows are sorted and hashed. Two databases on
different backends holding the same rows give the same checksums.

Example
-------
>>> before = table_checksums(engine)          # doctest: +SKIP
>>> ...                                       # doctest: +SKIP
>>> assert table_checksums(engine) == before  # doctest: +SKIP
"""
from __future__ import annotations

import datetime as dt
import decimal
import hashlib

import sqlalchemy as sa

from analytics import schema


def _norm(value) -> str:
    if value is None:
        return "\x00NULL"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return format(value, ".12g")
    if isinstance(value, decimal.Decimal):
        return format(float(value), ".12g")
    if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-" and value[7:8] == "-":
        # SQLite returns DateTime columns read through a text() query as text: same form as above.
        try:
            return dt.datetime.fromisoformat(value).isoformat(sep=" ", timespec="microseconds") \
                if len(value) > 10 else dt.date.fromisoformat(value).isoformat()
        except ValueError:
            return value
    return str(value)


def table_rows(conn: sa.Connection, table: sa.Table) -> list[tuple[str, ...]]:
    """All rows of ``table`` as sorted tuples of normalised text (columns in schema order)."""
    rows = conn.execute(sa.select(*table.c)).all()
    return sorted(tuple(_norm(v) for v in row) for row in rows)


def table_checksums(engine_or_conn, tables=None) -> dict[str, tuple[int, str]]:
    """``{table: (row_count, sha256 of the sorted normalised rows)}`` for every ledger table."""
    tables = tables or schema.LEDGER_TABLES

    def run(conn):
        out = {}
        for t in tables:
            h = hashlib.sha256()
            rows = table_rows(conn, t)
            for row in rows:
                h.update("\x1f".join(row).encode("utf-8", "surrogatepass"))
                h.update(b"\x1e")
            out[t.name] = (len(rows), h.hexdigest())
        return out

    if isinstance(engine_or_conn, sa.Engine):
        with engine_or_conn.connect() as conn:
            return run(conn)
    return run(engine_or_conn)


def row_counts(engine_or_conn) -> dict[str, int]:
    """Row count per ledger table."""
    return {name: n for name, (n, _) in table_checksums(engine_or_conn).items()}
