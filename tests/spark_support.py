"""Run captured KPI statements on Apache Spark in local mode (tests/test_spark.py, benchmarks/bench_spark.py).

Spark is reached through SQLAlchemy's **Databricks dialect** (``databricks-sqlalchemy``; Databricks SQL is
Spark SQL): each statement is compiled with its values inlined and run with ``spark.sql()``. Only one
rendering differs from the dialect's own: a ``DATE`` value becomes the typed literal ``DATE 'yyyy-mm-dd'``
(the dialect inlines a bare string, which Spark compares correctly but returns as a string column where
``analytics.db.date_values`` selects it; over a real Databricks connection dates are bound parameters and
typed anyway).

The ledger tables are copied from a DuckDB ledger as Parquet (DuckDB's ``COPY``: ``DATE`` stays a date,
``BIGINT`` cents stay 64-bit integers) and registered as Spark temporary views with the same names.
Nothing here is imported unless pyspark is installed.
"""
from __future__ import annotations

import datetime as dt
import decimal
import math
import os
import shutil
from pathlib import Path

import sqlalchemy as sa

from analytics import schema

SPARK_REQUIRED_ENV = "AR_SPARK_REQUIRED"  # `make spark-check` sets it: a missing pyspark/Java then fails, not skips


def spark_dialect() -> sa.Dialect:
    """The Databricks (Spark SQL) dialect, rendering dates as typed ``DATE '...'`` literals."""
    dialect = sa.create_engine("databricks://token:unused@localhost?http_path=/unused"
                               "&catalog=spark_catalog&schema=default").dialect
    base = dialect.statement_compiler

    class SparkLiteralCompiler(base):
        def render_literal_value(self, value, type_):
            if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
                return f"DATE '{value.isoformat()}'"
            return super().render_literal_value(value, type_)

    dialect.statement_compiler = SparkLiteralCompiler
    return dialect


def spark_sql(stmt: sa.sql.ClauseElement, dialect: sa.Dialect | None = None) -> str:
    """``stmt`` as one Spark SQL string with every value inlined."""
    return str(stmt.compile(dialect=dialect or spark_dialect(), compile_kwargs={"literal_binds": True}))


def java_available() -> bool:
    return bool(os.environ.get("JAVA_HOME")) or shutil.which("java") is not None


def start_spark(app: str = "ar-analytics", memory: str = "1g"):
    """A local SparkSession on two cores with a small driver, no UI and few shuffle partitions."""
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]").appName(app)
             .config("spark.driver.memory", memory)
             .config("spark.sql.shuffle.partitions", "4")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.session.timeZone", "UTC")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def register_ledger(spark, engine: sa.Engine, directory: Path) -> list[str]:
    """Copy every schema table of the DuckDB ledger ``engine`` to Parquet in ``directory``; register each as
    a Spark temp view of the same name. Returns the table names."""
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    with engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            path = directory / f"{table.name}.parquet"
            conn.exec_driver_sql(f"COPY \"{table.name}\" TO '{path}' (FORMAT parquet)")
            spark.read.parquet(str(path)).createOrReplaceTempView(table.name)
            names.append(table.name)
    return names


def _norm(value):
    return float(value) if isinstance(value, decimal.Decimal) else value


def _sort_key(row):
    return tuple((v is None, type(v).__name__ if not isinstance(v, (int, float)) else "n", str(v)) for v in row)


def same_rows(got: list[tuple], want: list[tuple], rel: float = 1e-9) -> str | None:
    """None when the two result sets are equal as multisets (integers, dates, strings exactly; floats within
    ``rel``); else a short description of the first difference."""
    if len(got) != len(want):
        return f"{len(got)} rows vs {len(want)}"
    got = sorted((tuple(_norm(v) for v in r) for r in got), key=_sort_key)
    want = sorted((tuple(_norm(v) for v in r) for r in want), key=_sort_key)
    for g, w in zip(got, want):
        if len(g) != len(w):
            return f"{len(g)} columns vs {len(w)}"
        for a, b in zip(g, w):
            if isinstance(a, float) or isinstance(b, float):
                if a is None or b is None or not math.isclose(a, b, rel_tol=rel, abs_tol=rel):
                    return f"row {g} vs {w}"
            elif a != b or type(a) is not type(b) and not (isinstance(a, int) and isinstance(b, int)):
                return f"row {g} vs {w}"
    return None
