# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck browser bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/botfleet demo

lint: $(STAMP)
	$(BIN)/ruff check bot coordinator botfleet bin tests benchmarks
	$(BIN)/ruff format --check bot coordinator botfleet bin tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# The dashboard test drives a real headless Chromium (Debian's package). Installing it
# needs root and apt; where that is impossible the browser test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	  || { apt-get install -y -q chromium >/dev/null 2>&1 \
	       || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
	       || echo "note: could not install chromium; the dashboard browser test will skip"; }

test: lint typecheck browser
	$(BIN)/pytest -q -p no:cacheprovider --cov --cov-report=term

bench: $(STAMP)
	$(BIN)/python -m benchmarks.coordinator
	$(BIN)/python -m benchmarks.end_to_end
	$(BIN)/python -m benchmarks.vs_celery
	$(BIN)/python -m benchmarks.round_trip
	$(BIN)/python -m benchmarks.scale
	$(BIN)/python -m benchmarks.postgres

clean:
	rm -rf $(VENV) .state .pytest_cache .mypy_cache .ruff_cache .coverage
