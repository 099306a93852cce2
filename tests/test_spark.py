"""Every KPI query runs on Apache Spark (local mode) and gives the same rows as on DuckDB.

Needs pyspark (``requirements-spark.txt``: a 450 MB download, kept out of requirements.txt), Java 17 and the
Databricks SQLAlchemy dialect; ``make spark-check`` builds the separate venv ``.venv-spark`` and runs this
file. In the normal ``make test`` venv the module SKIPS, saying so.

How: every KPI function runs once on a small generated DuckDB ledger while its statements are captured
(``tests/kpi_capture.py``, as in ``tests/test_dialects.py``). The ledger tables are copied to Parquet and
registered in a local SparkSession as temp views of the same names and types. Each captured statement is
compiled by the Databricks (Spark SQL) dialect with its values inlined, run with ``spark.sql()``, and its
rows compared with the same statement on DuckDB: integers (cents, counts), dates and strings exactly, floats
to 1e-9 relative.
"""
from __future__ import annotations

import importlib.util
import os
import re
import time

import pytest

from tests.spark_support import SPARK_REQUIRED_ENV, java_available

_missing = [m for m in ("pyspark", "databricks.sqlalchemy") if importlib.util.find_spec(m.split(".")[0]) is None
            or importlib.util.find_spec(m) is None]
if not java_available():
    _missing.append("java (a JDK 17: `apt-get install openjdk-17-jre-headless`)")
if _missing:
    _why = (f"Spark check needs {', '.join(_missing)}: run `make spark-check` (separate venv .venv-spark with "
            "requirements-spark.txt); pyspark is not in requirements.txt (450 MB)")
    if os.environ.get(SPARK_REQUIRED_ENV):
        raise ImportError(_why)
    pytest.skip(_why, allow_module_level=True)

from analytics import db, generator  # noqa: E402
from tests.kpi_capture import AS_OF, capture_kpi_statements  # noqa: E402
from tests.spark_support import register_ledger, same_rows, spark_dialect, spark_sql, start_spark  # noqa: E402

pytestmark = [
    pytest.mark.slow,  # JVM start-up plus ~40 Spark jobs: 1-3 min on 2 shared cores
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),  # no pandas path used
]


def _same_names(got: list[str], want: list[str]) -> bool:
    """Same column names, except SQLAlchemy's anonymous labels (``coalesce_1``...) numbered per compilation."""
    anon = re.compile(r"^[a-z]+(_[a-z]+)*_\d+$")
    return len(got) == len(want) and all(
        g.lower() == w.lower() or (anon.match(g) and anon.match(w)) for g, w in zip(got, want))


@pytest.fixture(scope="module")
def ledger_engine(tmp_path_factory):
    engine = db.connect(f"duckdb:///{tmp_path_factory.mktemp('spark') / 'ledger.duckdb'}")
    generator.generate(engine, customers=20, invoices=600, seed=5, end=AS_OF)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def captured(ledger_engine):
    return capture_kpi_statements(ledger_engine)


@pytest.fixture(scope="module")
def spark(ledger_engine, tmp_path_factory):
    session = start_spark("ar-test-spark")
    register_ledger(session, ledger_engine, tmp_path_factory.mktemp("spark_parquet"))
    yield session
    session.sparkContext.setLogLevel("OFF")  # stop() may log rejected late task results: harmless
    session.stop()


def test_ledger_views_keep_types(spark):
    types = dict(spark.table("invoices").dtypes)
    assert types["invoice_date"] == "date" and types["due_date"] == "date"
    assert types["amount_cents"] == "bigint"
    assert dict(spark.table("applications").dtypes)["amount_cents"] == "bigint"


def test_every_kpi_statement_runs_on_spark_like_duckdb(spark, ledger_engine, captured):
    names, statements = captured
    assert {c.call for c in statements} == set(names)  # every KPI call sent at least one statement
    dialect = spark_dialect()
    failures, timings = [], {"spark": 0.0, "duckdb": 0.0}
    with ledger_engine.connect() as conn:
        for call, stmt in statements:
            sql = spark_sql(stmt, dialect)
            t0 = time.perf_counter()
            try:
                frame = spark.sql(sql)
                got = [tuple(r) for r in frame.collect()]
            except Exception as exc:  # noqa: BLE001 - report every statement that fails
                failures.append(f"{call}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}\n{sql[:400]}")
                continue
            timings["spark"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            result = conn.execute(stmt)
            want = [tuple(r) for r in result.all()]
            timings["duckdb"] += time.perf_counter() - t0
            if not _same_names(frame.columns, list(result.keys())):
                failures.append(f"{call}: columns {frame.columns} vs {list(result.keys())}")
            elif (diff := same_rows(got, want)) is not None:
                failures.append(f"{call}: {diff}")
    print(f"\n{len(statements)} statements: Spark {timings['spark']:.1f} s, DuckDB {timings['duckdb']:.2f} s")
    assert not failures, f"{len(failures)} of {len(statements)} statements differ:\n" + "\n\n".join(failures)


def test_days_between_is_datediff_on_spark(captured):
    _, statements = captured
    sqls = [spark_sql(stmt) for _, stmt in statements]
    assert sum("datediff(" in s for s in sqls) >= 5
    assert not any("julianday" in s or "date_diff('day'" in s for s in sqls)
    assert any("DATE '2026-10-31'" in s for s in sqls)
