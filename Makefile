# postfix-archiver: `make run` starts the archiver on its embedded default (SQLite + files),
# `make test` runs the whole suite (lint, types, unit and integration tests).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: venv run test lint typecheck pytest unit integration bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: venv
	$(BIN)/postfix-archiver run

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(PY) -m pytest -q

unit: venv
	$(PY) -m pytest -q tests/unit

integration: venv
	$(PY) -m pytest -q tests/integration

test: lint typecheck pytest

bench: venv
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
