# Entry points. `make demo` runs the main job on the embedded default; `make test` runs the suite.
# Both create .venv/ themselves on a fresh machine (torch pinned to the 2.13.0 CPU wheel).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LS_VENV := .venv-labelstudio

BYTECODE := $(VENV)/.bytecode
LS_TEMPLATE := $(LS_VENV)/aesdata-test-template

.PHONY: setup test test-deps test-fast demo bench lint schemas labelstudio browser clean

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
test: test-deps
	$(PY) -m pytest -q

# What the suite needs, side by side: each step is mostly one core (pip, Label Studio's migrations), and
# Label Studio's virtualenv does not wait for ours. On a set-up machine all of it is a few no-ops.
test-deps:
	$(MAKE) --no-print-directory -j4 setup $(BYTECODE) labelstudio $(LS_TEMPLATE) browser

# The suite without real servers and browsers (quick inner loop).
test-fast: setup $(BYTECODE)
	$(PY) -m pytest -q -m "not slow"

# Byte-code of .venv and the source tree, written once on both cores (.ci/bytecode.py says why: in a
# PYTHONDONTWRITEBYTECODE=1 shell every process the suite starts compiled torch, datasets, ray again).
$(BYTECODE): $(STAMP)
	$(PY) .ci/bytecode.py
	touch $@

demo: setup
	bash scripts/demo.sh

# Label Studio pins libraries aesdata needs newer (openai<2, pyarrow<25): it gets its own venv.
# The same code as `aesdata annotate install` (a finished virtualenv is a no-op, an interrupted one redone),
# run by the bare interpreter from the source tree (install() needs only the standard library), so it
# does not wait for .venv. --no-compile: pip would byte-compile all of it (33 s of CPU); Label Studio's
# processes get no PYTHONDONTWRITEBYTECODE (childenv), so they write the third of it they import, once.
labelstudio:
	PYTHONPATH=$(CURDIR) $(PYTHON) -c 'import sys; from pathlib import Path; from aesdata.annotate.server import install; print(install(Path(sys.argv[1]), pip_args=["--no-compile"])["done"])' $(LS_VENV)

# The tests' migrated, empty Label Studio data folder (tests/annotate/throwaway.py): its first start
# migrates for over a minute, done here beside the byte-compilation instead of inside the first test.
$(LS_TEMPLATE): | setup labelstudio
	$(PY) -m tests.annotate.throwaway

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
