# The few commands a person runs; CI runs `make test` (see .ci/run).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check
# pytest-xdist workers: more than the cores, since most tests wait on servers and subprocesses.
WORKERS ?= 4

.PHONY: demo test lint typecheck pytest docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One stamp per install flavour, redone when pyproject.toml changes.
$(VENV)/.demo-installed: $(BIN)/python pyproject.toml
	$(PIP) -e '.[sql]'
	touch $@

$(VENV)/.test-installed: $(BIN)/python pyproject.toml
	$(PIP) -e '.[test]'
	touch $@

$(VENV)/.docs-installed: $(BIN)/python pyproject.toml
	$(PIP) -e '.[docs]'
	touch $@

$(VENV)/.bench-installed: $(BIN)/python pyproject.toml
	$(PIP) -e '.[bench]'
	touch $@

## demo: create the virtualenv, install, run the quickstart on the embedded default (no server)
demo: $(VENV)/.demo-installed
	$(BIN)/python examples/quickstart.py

## lint: ruff (lint + format check) and strict mypy on both packages
lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## test: lint, then the whole suite with warnings as errors on $(WORKERS) pytest-xdist workers:
## first all but the tests marked timing, then those, away from the CPU-heavy rest (conftest.py)
test: lint pytest

pytest: $(VENV)/.test-installed
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadgroup -m "not timing"
	$(BIN)/python -m pytest -n 2 -m timing  # two at a time: more makes their deadlines miss

## docs: the documentation site (docs/, mkdocs.yml) into var/site, strictly (as CI does)
docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## bench: the benchmark suite; writes benchmarks/RESULTS.md
bench: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
