# Everything runs from a project-local virtualenv, created on first use with nothing but Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test check lint typecheck bench clean

$(STAMP): pyproject.toml setup.py src/tradeloop/core/_fastparse.c
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the main job: a market-making backtest on the seeded synthetic market, with an HTML report.
demo: $(STAMP)
	rm -f runs/demo/journal.sqlite
	$(BIN)/tradeloop backtest --journal runs/demo/journal.sqlite --report runs/demo/report.html

## Every check: ruff, mypy --strict on src/, then all tests.
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks $(wildcard examples)
	$(BIN)/mypy
	$(BIN)/pytest

check: test

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks $(wildcard examples)

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py --output benchmarks/results.json

clean:
	rm -rf $(VENV) build runs src/*.egg-info
