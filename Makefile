# Two commands on a fresh machine: `make run` and `make test`.
# Everything they need is set up here; nothing is installed by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.requirements.stamp
DEMO_DB := data/demo.db
DEMO_CUSTOMERS ?= 400
DEMO_INVOICES  ?= 40000

.PHONY: run test setup demo-db system-deps bench spark-check clean help run-postgres stop-postgres

help:
	@echo "make run    - set up and start the dashboard on http://127.0.0.1:8501"
	@echo "make test   - set up and run the whole test suite"
	@echo "make run-postgres - the same dashboard on a local PostgreSQL server kept in data/postgres (a team's ledger)"
	@echo "make stop-postgres - stop that server"
	@echo "make bench  - the scale benchmark at 1M and 5M invoices (prints the README table, ~30 min)"
	@echo "make spark-check - run every KPI query on Apache Spark (local mode) against DuckDB (needs Java 17)"

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)

$(DEMO_DB): | $(STAMP)
	$(PY) -m analytics generate --customers $(DEMO_CUSTOMERS) --invoices $(DEMO_INVOICES) --seed 42 --db duckdb:///$(DEMO_DB) --demo-users

demo-db: $(DEMO_DB)

# Best effort: PostgreSQL server and Chromium for the integration and browser tests.
# Tests skip with a clear message when these cannot be installed.
system-deps:
	-@bash scripts/system-deps.sh

run: $(STAMP) $(DEMO_DB)
	AR_DEMO_MODE=1 $(PY) -m streamlit run dashboard/app.py --server.address 127.0.0.1 --server.port 8501 --server.headless true

# The dashboard on a local PostgreSQL (Debian's package, installed if missing when root): server kept in
# $(PG_DATA) on 127.0.0.1:$(PG_PORT), password in $(PG_DATA).password, ledger database `ar` with the demo
# ledger and users on the first start. `make stop-postgres` stops the server. An existing server: see README.
PG_DATA ?= data/postgres
PG_PORT ?= 5433
run-postgres: $(STAMP)
	$(PY) scripts/postgres_local.py up --data $(PG_DATA) --port $(PG_PORT) --demo >/dev/null
	AR_DEMO_MODE=1 AR_DB_URL="$$($(PY) scripts/postgres_local.py url --data $(PG_DATA) --port $(PG_PORT))" \
	  $(PY) -m streamlit run dashboard/app.py --server.address 127.0.0.1 --server.port 8501 --server.headless true

stop-postgres:
	$(PY) scripts/postgres_local.py stop --data $(PG_DATA)

test: $(STAMP) system-deps
	$(PY) -m pytest

# The README's scale table: both sizes (~30 min on 2 cores; ledgers kept in /tmp/ar_bench_N).
bench: $(STAMP)
	$(PY) benchmarks/run.py --invoices 1000000
	$(PY) benchmarks/run.py --invoices 5000000 --no-sqlite

# Spark check: a separate venv (pyspark is ~450 MB, kept out of requirements.txt); needs a Java 17 runtime.
SPARK_VENV  := .venv-spark
SPARK_STAMP := $(SPARK_VENV)/.requirements.stamp

$(SPARK_STAMP): requirements.txt requirements-spark.txt
	test -x $(SPARK_VENV)/bin/python || $(PYTHON) -m venv $(SPARK_VENV)
	$(SPARK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SPARK_VENV)/bin/python -m pip install --quiet -r requirements.txt -r requirements-spark.txt
	touch $(SPARK_STAMP)

spark-check: $(SPARK_STAMP)
	@command -v java >/dev/null || test -n "$$JAVA_HOME" || { echo "spark-check needs Java 17 (apt-get install openjdk-17-jre-headless)"; exit 2; }
	AR_SPARK_REQUIRED=1 $(SPARK_VENV)/bin/python -m pytest -q -p no:cacheprovider -rs tests/test_spark.py tests/test_dialects.py

clean:
	rm -rf $(VENV) $(SPARK_VENV) $(DEMO_DB) $(DEMO_DB).wal tests/artifacts
