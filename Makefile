# `make run` and `make test` are the whole set-up: each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PORT ?= 7071
SIMULATE_RATE ?= 5
SIMULATE_ARGS ?=
PYTEST_ARGS ?=
TABLE ?=

.PHONY: run test test-all lint format lock lake clean

# Installs from the locks: exact versions with hashes (requirements*.txt).
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.txt
	touch $(STAMP)

# Azurite, the Azure Storage emulator, from package-lock.json: only the tests need it.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# Refreshes the locks from the ranges in requirements*.in (review the diff, then `make test`).
UV_COMPILE = $(VENV)/bin/uv pip compile --no-config --python-version 3.11 --generate-hashes --quiet --upgrade
lock: $(STAMP)
	$(UV_COMPILE) requirements.in -o requirements.txt
	$(UV_COMPILE) requirements-dev.in -o requirements-dev.txt

# The devhost in the foreground; the traffic simulator posts gently in the background once
# /api/health answers (it says so then), and stops with it. SIMULATE_RATE=0 leaves it out;
# SIMULATE_ARGS passes it more options (SIMULATE_ARGS="--drift-at +30m" shifts the traffic).
run: $(STAMP)
	@set -e; \
	if [ "$(SIMULATE_RATE)" != "0" ]; then \
	  $(PY) -m benchmarks.simulate --rate $(SIMULATE_RATE) --wait 300 $(SIMULATE_ARGS) \
	    --url http://127.0.0.1:$(PORT)/api/events & SIMULATOR=$$!; \
	  trap 'kill $$SIMULATOR 2>/dev/null || true' EXIT INT TERM; \
	fi; \
	$(PY) -m devhost start --port $(PORT)

# The suite without the slow suites (about 12 minutes on two idle cores); CI runs test-all.
test: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared devhost embedded functions orchestrations function_app.py
	$(VENV)/bin/lint-imports

# The lake's tables (rows, version, last commit); TABLE=gold/merchant_daily prints its first rows.
lake: $(STAMP)
	@$(PY) -m shared.lakehouse.browse $(if $(TABLE),--show $(TABLE))

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .data node_modules .pytest_cache .mypy_cache .ruff_cache
