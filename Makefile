# pixsight: `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIXSIGHT := $(VENV)/bin/pixsight
STAMP := $(VENV)/.pixsight-installed
OUT := out
# Debian packages: tesseract is an optional second OCR engine (without it OCR uses RapidOCR
# only); chromium runs the web UI's browser tests (Playwright drives /usr/bin/chromium).

.PHONY: setup demo test test-fast bench examples clean system-deps

setup: $(STAMP)

system-deps:
	@missing=""; \
	command -v tesseract >/dev/null 2>&1 || missing="$$missing tesseract-ocr tesseract-ocr-eng"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing (Debian packages)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: could not install$$missing (OCR falls back to RapidOCR; browser tests are skipped)"; \
	  else echo "note: missing$$missing (sudo apt-get install$$missing)"; fi; \
	fi

$(STAMP): pyproject.toml requirements/constraints.txt
	$(MAKE) system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements/constraints.txt -e '.[models,data,search,torch,train,serve,dev]'
	$(PY) -m pip install -q --no-deps -c requirements/constraints.txt 'grad-cam==1.5.7'
	touch $(STAMP)

examples: setup
	$(PY) examples/make_examples.py examples/generated

demo: setup examples
	rm -rf $(OUT)/demo && mkdir -p $(OUT)/demo
	$(PIXSIGHT) analyze examples/generated --db $(OUT)/demo/catalog.sqlite --jsonl $(OUT)/demo/results.jsonl \
	  --annotate $(OUT)/demo/overlays --report $(OUT)/demo/report.html
	@echo "open $(OUT)/demo/report.html to see what pixsight found"
	@echo "or browse it: $(PIXSIGHT) serve --db $(OUT)/demo/catalog.sqlite  (then http://127.0.0.1:8000/)"

test: setup
	PIXSIGHT_HOME=$(CURDIR)/.pixsight-home $(PY) -m pytest -q

test-fast: setup
	PIXSIGHT_HOME=$(CURDIR)/.pixsight-home $(PY) -m pytest -q -m "not slow"

bench: setup
	PIXSIGHT_HOME=$(CURDIR)/.pixsight-home $(PY) benchmarks/run_all.py

clean:
	rm -rf $(OUT) examples/generated .pixsight-home .pytest_cache
