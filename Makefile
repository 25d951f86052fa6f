# `make lab`: set up .venv and run the lab report on built-in data (the main job).
# `make test`: set up .venv and run the test suite (what CI runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: lab lab-full test test-all bench chromium clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/linearnets lab --quick --out lab-report

lab-full: $(STAMP)
	$(BIN)/linearnets lab --out lab-report-full

test: $(STAMP) chromium
	$(BIN)/python -m pytest

test-all: $(STAMP) chromium
	$(BIN)/python -m pytest -m ''

bench: $(STAMP)
	$(BIN)/linearnets bench

# Headless Chromium renders the HTML report in tests/test_report.py (skipped when absent).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null) \
	      || echo "note: could not install chromium; the report rendering test will be skipped"; \
	  else echo "note: chromium not found; the report rendering test will be skipped"; fi; }

clean:
	rm -rf $(VENV) lab-report lab-report-full
