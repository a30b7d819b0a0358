# The few commands a person runs; CI runs `make test` (see .ci/run).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: demo test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One stamp per install flavour, redone when pyproject.toml changes.
$(VENV)/.demo-installed: $(BIN)/python pyproject.toml
	$(PIP) -e '.[sql]'
	touch $@

$(VENV)/.test-installed: $(BIN)/python pyproject.toml
	$(PIP) -e '.[test]'
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

## test: lint, then the whole suite with warnings as errors
test: lint pytest

pytest: $(VENV)/.test-installed
	$(BIN)/python -m pytest

## bench: the benchmark suite; writes benchmarks/RESULTS.md
bench: $(VENV)/.bench-installed
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
