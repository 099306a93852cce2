# Two commands on a fresh machine: `make run` and `make test`.
# Everything they need is set up here; nothing is installed by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.requirements.stamp
DEMO_DB := data/demo.db
DEMO_CUSTOMERS ?= 400
DEMO_INVOICES  ?= 40000

.PHONY: run test setup demo-db system-deps bench clean help

help:
	@echo "make run    - set up and start the dashboard on http://127.0.0.1:8501"
	@echo "make test   - set up and run the whole test suite"
	@echo "make bench  - run the benchmarks (prints figures)"

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
	$(PY) -m streamlit run dashboard/app.py --server.address 127.0.0.1 --server.port 8501 --server.headless true

test: $(STAMP) system-deps
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/run.py --invoices 1000000

clean:
	rm -rf $(VENV) $(DEMO_DB) $(DEMO_DB).wal tests/artifacts
