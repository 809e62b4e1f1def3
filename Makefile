# Entry points. `make demo` runs the main job on the embedded default; `make test` runs the suite.
# Both create .venv/ themselves on a fresh machine (torch pinned to the 2.13.0 CPU wheel).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LS_VENV := .venv-labelstudio

.PHONY: setup test test-fast demo bench lint schemas labelstudio clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q

# The suite without real servers and browsers (quick inner loop).
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

demo: setup
	$(VENV)/bin/aesdata --version

bench: setup
	$(PY) benchmarks/run_all.py

lint: setup
	$(VENV)/bin/ruff check aesdata tests benchmarks
	$(VENV)/bin/ruff format --check aesdata tests benchmarks

schemas: setup
	$(VENV)/bin/aesdata schemas

clean:
	rm -rf $(VENV) $(LS_VENV) .pytest_cache .ruff_cache demo
