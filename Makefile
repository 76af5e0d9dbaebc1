# The two commands of the README: `make run` and `make test`. Both build the virtual
# environment on first use and start the embedded PostgreSQL when DATABASE_URL is unset.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-pg15 lint fuzz bench openapi clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python scripts/serve.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q

openapi: install
	$(BIN)/python scripts/openapi.py write

# The suite against the system PostgreSQL 15 (PostgreSQL 15 to 18 are supported; make test
# uses the embedded 18). Needs Debian's postgresql-15 installed.
PG15_BIN ?= /usr/lib/postgresql/15/bin
test-pg15: install
	$(BIN)/python scripts/test_other_postgres.py $(PG15_BIN)

bench: install
	$(BIN)/python scripts/bench.py all

clean:
	rm -rf $(VENV) var/test-*
