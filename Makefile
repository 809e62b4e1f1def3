# Entry points. `make demo` runs the main job on the embedded default; `make test` runs the suite.
# Both create .venv/ themselves on a fresh machine (torch pinned to the 2.13.0 CPU wheel).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LS_VENV := .venv-labelstudio

.PHONY: setup test test-fast demo bench lint schemas labelstudio browser clean

setup: $(STAMP)

# --no-compile: pip would byte-compile every module of torch and ray (about a minute of CPU); Python
# compiles the ones a run imports, once, on first use.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile torch==2.13.0
	$(PY) -m pip install -q --no-compile -e '.[dev,ray]'
	touch $(STAMP)

# The full suite needs the real Label Studio (own virtualenv) and Debian's chromium: both are
# installed here when missing, so a fresh clone passes.
test: setup labelstudio browser
	$(PY) -m pytest -q

# The suite without real servers and browsers (quick inner loop).
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

demo: setup
	bash scripts/demo.sh

# Label Studio pins libraries aesdata needs newer (openai<2, pyarrow<25): it gets its own venv.
# The same code as `aesdata annotate install` (a finished virtualenv is a no-op, an interrupted one redone).
labelstudio: setup
	$(VENV)/bin/aesdata annotate install $(LS_VENV)

browser:
	bash scripts/install_browser.sh

# `make bench` runs them all; `make bench ONLY="ingest cot"` a subset.
bench: setup $(VENV)/.bench
	$(PY) benchmarks/run_all.py $(ONLY)

$(VENV)/.bench: pyproject.toml
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

lint: setup
	$(VENV)/bin/ruff check aesdata tests benchmarks

schemas: setup
	$(VENV)/bin/aesdata schemas

clean:
	rm -rf $(VENV) $(LS_VENV) .pytest_cache .ruff_cache demo
