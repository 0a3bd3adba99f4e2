# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/botfleet demo

lint: $(STAMP)
	$(BIN)/ruff check bot coordinator botfleet bin tests benchmarks
	$(BIN)/ruff format --check bot coordinator botfleet bin tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider --cov --cov-report=term

bench: $(STAMP)
	$(BIN)/python benchmarks/coordinator.py

clean:
	rm -rf $(VENV) .state .pytest_cache .mypy_cache .ruff_cache .coverage
