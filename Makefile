# The two commands of the README: `make run` and `make test`. Both build the virtual
# environment on first use and start the embedded PostgreSQL when DATABASE_URL is unset.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run run-citus test test-pg15 lint fuzz bench openapi settings-doc clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python scripts/serve.py

# The API on a local Citus cluster (coordinator + 2 workers; docs/scale-out.md). Needs Citus
# built into Debian's PostgreSQL 15: ../shared/tools/citus/install (as root).
run-citus: install
	$(BIN)/python scripts/serve.py --citus

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# pytest-xdist: TEST_JOBS worker processes, each with its own session fixtures and so its own
# embedded PostgreSQL (~100 MB each); whole files go to one worker (--dist loadfile), so a
# file's module fixtures are built once. TEST_JOBS=0 runs in one process.
TEST_JOBS ?= 2
test: lint
	$(BIN)/pytest -q -n $(TEST_JOBS) --dist loadfile

# The fuzzers of tests/integration/proof with a larger budget than `make test` gives them:
# `make fuzz FUZZ_EXAMPLES=500 FUZZ_SEED=1` (schemathesis examples per operation and phase,
# isolation examples = FUZZ_EXAMPLES / 4 with 30 steps each). No per-test time limit.
FUZZ_EXAMPLES ?= 200
fuzz: install
	LOG_LEVEL=WARNING FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) ISOLATION_EXAMPLES=$$(( $(FUZZ_EXAMPLES) / 4 )) ISOLATION_STEPS=30 \
		$(BIN)/pytest -q -s --timeout=0 -p no:cacheprovider \
		tests/integration/proof/test_api_fuzz.py tests/integration/proof/test_isolation_fuzz.py

openapi: install
	$(BIN)/python scripts/openapi.py write

settings-doc: install
	$(BIN)/python scripts/settings_doc.py write

# The suite against the system PostgreSQL 15 (PostgreSQL 15 to 18 are supported; make test
# uses the embedded 18). Needs Debian's postgresql-15 installed.
PG15_BIN ?= /usr/lib/postgresql/15/bin
test-pg15: install
	$(BIN)/python scripts/test_other_postgres.py $(PG15_BIN)

bench: install
	$(BIN)/python scripts/bench.py all

clean:
	rm -rf $(VENV) var/test-*
