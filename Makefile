# pixsight: `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIXSIGHT := $(VENV)/bin/pixsight
STAMP := $(VENV)/.pixsight-installed
OUT := out
# Installs come from requirements/lock.txt: the exact versions (with hashes) that were tested.
# `make lock` refreshes it from pyproject.toml's bounds with pip-tools, run from a venv of its own.
LOCK := requirements/lock.txt
LOCK_EXTRAS := models data search torch train serve dev
LOCK_VENV := .venv-lock
PIP_VERSION := 26.3
PIP_TOOLS_VERSION := 7.7.0
LOCK_ARGS ?=
# Debian packages: tesseract is the second OCR engine and chromium runs the web UI's browser
# tests (Playwright drives /usr/bin/chromium); qemu-user runs the INT8 model on an emulated
# AVX2-only CPU in the tests (x86-64 machines). `make test` needs them all: it sets
# PIXSIGHT_REQUIRE_ALL=1, so a test skipped for a missing dependency fails the run.

.PHONY: setup demo test test-fast bench examples clean system-deps lock docs

setup: $(STAMP)

system-deps:
	@missing=""; \
	command -v tesseract >/dev/null 2>&1 || missing="$$missing tesseract-ocr tesseract-ocr-eng"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ "$$(uname -m)" != x86_64 ] || command -v qemu-x86_64 >/dev/null 2>&1 || missing="$$missing qemu-user"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing (Debian packages)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: could not install$$missing (the demo still runs; make test will fail)"; \
	  else echo "note: missing$$missing (sudo apt-get install$$missing)"; fi; \
	fi

# The lock is installed with --no-deps: it is complete (make lock resolved it), and grad-cam's
# own metadata would otherwise pull in opencv-python next to our opencv-python-headless.
$(STAMP): pyproject.toml $(LOCK)
	$(MAKE) system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q 'pip==$(PIP_VERSION)'
	$(PY) -m pip install -q --no-deps --require-hashes -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

# Re-resolve the lock after a change of bounds in pyproject.toml (or requirements/lock.in,
# requirements/constraints.txt). Versions already locked are kept where they still fit;
# `make lock LOCK_ARGS=--upgrade-package=NAME` moves one package to its newest allowed version.
lock:
	test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && \
	  $(LOCK_VENV)/bin/pip install -q 'pip==$(PIP_VERSION)' 'pip-tools==$(PIP_TOOLS_VERSION)'; }
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes \
	  --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
	  $(foreach extra,$(LOCK_EXTRAS),--extra $(extra)) $(LOCK_ARGS) \
	  --output-file $(LOCK) pyproject.toml requirements/lock.in

examples: setup
	$(PY) examples/make_examples.py examples/generated

demo: setup examples
	rm -rf $(OUT)/demo && mkdir -p $(OUT)/demo
	$(PIXSIGHT) analyze examples/generated --db $(OUT)/demo/catalog.sqlite --jsonl $(OUT)/demo/results.jsonl \
	  --annotate $(OUT)/demo/overlays --report $(OUT)/demo/report.html
	@echo "open $(OUT)/demo/report.html to see what pixsight found"
	@echo "or browse it: $(PIXSIGHT) serve --db $(OUT)/demo/catalog.sqlite  (then http://127.0.0.1:8000/)"

# PIXSIGHT_REQUIRE_ALL=1: a test skipped because something this Makefile installs is missing
# (dlib, torch, tesseract, Chromium, ...) fails instead (tests/conftest.py).
test: setup
	PIXSIGHT_REQUIRE_ALL=1 PIXSIGHT_HOME=$(CURDIR)/.pixsight-home $(PY) -m pytest -q

test-fast: setup
	PIXSIGHT_REQUIRE_ALL=1 PIXSIGHT_HOME=$(CURDIR)/.pixsight-home $(PY) -m pytest -q -m "not slow"

# The reference site (docs/, mkdocs.yml); --strict turns a broken link into an error.
docs: setup
	$(PY) -m mkdocs build --strict
	@echo "open $(OUT)/site/index.html"

bench: setup
	PIXSIGHT_HOME=$(CURDIR)/.pixsight-home $(PY) benchmarks/run_all.py

clean:
	rm -rf $(OUT) examples/generated .pixsight-home .pytest_cache $(LOCK_VENV)
