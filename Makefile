# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The demo needs only the runtime dependencies (RUNTIME_STAMP); the tests, the checks
# and the benchmarks need the `dev` and `bench` extras too (STAMP). Those include the
# runtime, so installing them marks both stamps: a demo after the tests installs nothing.
STAMP := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime

.PHONY: demo test lint typecheck browser docs bench clean

$(RUNTIME_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP) $(RUNTIME_STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/botfleet demo

lint: $(STAMP)
	$(BIN)/ruff check bot coordinator botfleet bin tests benchmarks docs/hooks docs/examples
	$(BIN)/ruff format --check bot coordinator botfleet bin tests benchmarks docs/hooks docs/examples

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy docs/hooks docs/examples

# The documentation site, into site/ (ignored by git). --strict: a broken link, a missing
# page or an unknown reference fails; the reference pages are generated from the code.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The dashboard test drives a real headless Chromium (Debian's package). Installing it
# needs root and apt. `.ci/run` sets BOTFLEET_REQUIRE_BROWSER=1: there a failed install
# stops here, and the test fails rather than skips; elsewhere the test skips and says why.
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=600
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	  || { log=$$(mktemp); \
	       echo "installing chromium (apt-get) for the dashboard browser test"; \
	       { $(APT_GET) install chromium || { $(APT_GET) update && $(APT_GET) install chromium; }; } \
	         >"$$log" 2>&1 \
	       && rm -f "$$log" \
	       || { echo "could not install chromium; the end of apt-get's output ($$log):"; \
	            tail -n 5 "$$log"; \
	            test "$$BOTFLEET_REQUIRE_BROWSER" != 1 \
	            && echo "note: the dashboard browser test will skip"; }; }

test: lint typecheck docs browser
	$(BIN)/pytest -q -p no:cacheprovider --cov --cov-report=term

bench: $(STAMP)
	$(BIN)/python -m benchmarks.coordinator
	$(BIN)/python -m benchmarks.end_to_end
	$(BIN)/python -m benchmarks.vs_celery
	$(BIN)/python -m benchmarks.mixed
	$(BIN)/python -m benchmarks.round_trip
	$(BIN)/python -m benchmarks.scale
	$(BIN)/python -m benchmarks.postgres

clean:
	rm -rf $(VENV) .state site .pytest_cache .mypy_cache .ruff_cache .coverage
