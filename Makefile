# Rolodex: `make run` serves the API on SQLite with a demo account; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5555
NODE_COMPAT := tests/compat/node

.PHONY: setup run test lint format bench bench-quick clean

# Serving needs only the package; the tests and benchmarks need their extras too.
$(VENV)/.installed-run: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed: $(VENV)/.installed-run
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

$(NODE_COMPAT)/node_modules/.installed: $(NODE_COMPAT)/package.json
	cd $(NODE_COMPAT) && npm install --no-audit --no-fund --loglevel=error
	touch $@

## setup: install Rolodex and everything the tests need (the real Nylas SDKs included)
setup: $(VENV)/.installed $(NODE_COMPAT)/node_modules/.installed

## run: serve on http://127.0.0.1:$(PORT) with SQLite; a fresh database gets a demo account
# A development server may sync with CardDAV servers on this machine (Radicale, Xandikos):
# outside of it, providers must be at public addresses unless allowed.
run: $(VENV)/.installed-run
	ROLODEX_ALLOWED_PROVIDER_HOSTS="$${ROLODEX_ALLOWED_PROVIDER_HOSTS-localhost,127.0.0.1,::1}" \
		$(BIN)/rolodex serve --port $(PORT)

## test: the whole suite (PostgreSQL tests skip without a server unless ROLODEX_REQUIRE_POSTGRES=1)
test: setup
	$(BIN)/pytest -n 2 --dist loadfile

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(VENV)/.installed
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

## bench: every benchmark at full size; bench-quick: the same in under 3 minutes
bench: setup
	$(BIN)/python -m bench --full

bench-quick: setup
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) $(NODE_COMPAT)/node_modules .mypy_cache .ruff_cache .pytest_cache
