# Stall: `make run` starts the demo store, `make test` runs the whole suite (SQLite, then PostgreSQL).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
# The PostgreSQL leg of the suite; pytest-django creates and drops test_<name> on this server.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/stall
TEST_DATA_DIR ?= $(CURDIR)/var/test
PYTEST_ARGS ?=

# LNbits for the Lightning tests, in a virtual environment of its own: its pinned dependencies clash
# with Stall's. It needs Python 3.10-3.12; LNBITS_PYTHON names one when python3 is newer.
LNBITS_VENV ?= .lnbits-venv
LNBITS_VERSION ?= 1.6.2
LNBITS_PYTHON ?= $(PYTHON)

.PHONY: run demo serve test lint test-sqlite test-postgres browser lnbits bench clean messages messages-extract

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Stall needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/python -m stall.core.catalogs
	touch $@

# The translations (stall/locale/*/LC_MESSAGES/django.po) compiled to .mo by Babel: no gettext needed.
messages: $(BIN)/.installed
	$(BIN)/python -m stall.core.catalogs

# New or changed strings into the .po files (Django's makemessages: needs GNU gettext's xgettext).
# Dashboard templates are left out: the creator's pages are English for now.
messages-extract: $(BIN)/.installed
	cd stall && ../$(BIN)/django-admin makemessages --settings=stall.settings -l ko -l pt_BR --no-obsolete \
	  --ignore='*/tests/*' --ignore='dashboard/*' --add-location=file

run: $(BIN)/.installed messages
	$(BIN)/stall demo
	PORT=$(PORT) $(BIN)/stall serve

# Debian's chromium for the browser journeys (Playwright drives it; it never downloads a browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Install Debian's chromium (sudo apt-get install chromium) for the browser tests." >&2; exit 1; fi; }

# bitstring 5 dropped what LNbits' bolt11 library imports (ConstBitStream): held below 5.
lnbits: $(LNBITS_VENV)/.installed
$(LNBITS_VENV)/.installed:
	$(LNBITS_PYTHON) -c 'import sys; assert (3, 10) <= sys.version_info[:2] <= (3, 12), "LNbits needs Python 3.10 to 3.12: set LNBITS_PYTHON"'
	$(LNBITS_PYTHON) -m venv $(LNBITS_VENV)
	$(LNBITS_VENV)/bin/pip install -q "lnbits==$(LNBITS_VERSION)" "bitstring<5"
	touch $@

test: lint test-sqlite test-postgres

# The layers (.importlinter is the map of the code) and ruff; a broken contract fails the build.
lint: $(BIN)/.installed
	$(BIN)/ruff check stall tests bench conftest.py
	$(BIN)/lint-imports .importlinter

# The scale-out test (tests/test_scale_out.py) needs PostgreSQL and Redis: it runs in test-postgres.
test-sqlite: $(BIN)/.installed messages browser lnbits
	rm -rf $(TEST_DATA_DIR)/sqlite && mkdir -p $(TEST_DATA_DIR)/sqlite
	STALL_DATA_DIR=$(TEST_DATA_DIR)/sqlite $(BIN)/pytest -q -m "not scale_out" $(PYTEST_ARGS)

test-postgres: $(BIN)/.installed messages browser lnbits
	@$(BIN)/python -c 'import psycopg, sys; psycopg.connect("$(TEST_DATABASE_URL)".rsplit("/", 1)[0] + "/postgres", connect_timeout=5).close()' \
	  || { echo "PostgreSQL is not reachable at $(TEST_DATABASE_URL); the suite must pass on it too." >&2; exit 1; }
	rm -rf $(TEST_DATA_DIR)/postgres && mkdir -p $(TEST_DATA_DIR)/postgres
	STALL_DATA_DIR=$(TEST_DATA_DIR)/postgres DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/pytest -q $(PYTEST_ARGS)

bench: $(BIN)/.installed
	$(BIN)/python bench/checkout.py

clean:
	rm -rf $(VENV) $(LNBITS_VENV) var test-artifacts
