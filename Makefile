# `make run` and `make test` are the whole set-up: each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 7071
SIMULATE_RATE ?= 5
PYTEST_ARGS ?=

.PHONY: run test test-fast lint format clean

$(STAMP): requirements.txt requirements-dev.txt $(wildcard package.json)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	if [ -f package.json ]; then npm install --no-audit --no-fund --loglevel=error; fi
	touch $(STAMP)

# The devhost in the foreground; the traffic simulator posts gently in the background once
# /api/health answers, and stops with it. SIMULATE_RATE=0 leaves it out.
run: $(STAMP)
	@set -e; \
	if [ "$(SIMULATE_RATE)" != "0" ]; then \
	  $(PY) -m benchmarks.simulate --rate $(SIMULATE_RATE) --wait 300 \
	    --url http://127.0.0.1:$(PORT)/api/events & SIMULATOR=$$!; \
	  trap 'kill $$SIMULATOR 2>/dev/null || true' EXIT INT TERM; \
	  echo "traffic simulator: $(SIMULATE_RATE) events/s to http://127.0.0.1:$(PORT)/api/events"; \
	fi; \
	$(PY) -m devhost start --port $(PORT)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared devhost functions orchestrations function_app.py

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .data node_modules .pytest_cache .mypy_cache .ruff_cache
