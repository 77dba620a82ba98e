# Two commands from a fresh clone:
#   make serve   set up, then run the server on http://127.0.0.1:8080 (ARGS="--port 9000 ...")
#   make test    set up, then run the whole test suite: lint, types, unit, integration, browser
# And hubbub.js as an npm package:
#   make npm-package   build/npm/hubbub-VERSION.tgz, with TypeScript declarations from its JSDoc
# And the benchmarks (minutes; not part of the tests, which run them at smoke size):
#   make bench   set up, then benchmark hubbub against its baselines into docs/benchmarks/
#                (ARGS="--size quick --scenarios relay,fanout" for a shorter run)
#   make bench-network   files and calls across a shaped path in network namespaces
#                (root; ARGS="--megabytes 8 --runs 1" for a shorter run)
# Each creates its own virtual environment (.venv) and installs what it needs when missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test bench bench-network lint check-python system-deps clean npm-package

serve: $(VENV)/.installed
	$(BIN)/hubbub serve $(ARGS)

test: $(VENV)/.installed-test system-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest --cov --cov-report=term:skip-covered $(PYTEST_ARGS)

bench: $(VENV)/.installed-bench system-deps
	$(BIN)/python -m bench $(ARGS)

bench-network: $(VENV)/.installed-test system-deps
	$(BIN)/python -m bench.network_path $(ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

system-deps:
	./scripts/system-deps.sh

npm-package: | check-python
	npm ci --prefix js --no-audit --no-fund --loglevel=error
	$(PYTHON) scripts/npm_package.py build/npm

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hubbub needs Python 3.11 or newer")'

$(VENV)/bin/python: | check-python
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-bench

$(VENV)/.installed-bench: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e '.[bench]'
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
