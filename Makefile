# The two commands README opens with: `make demo` and `make test`. Everything else is a step.
# Installs are reproducible: uv (pinned below) syncs .venv exactly to uv.lock.

PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON_DOWNLOADS := never

# The demo's embedded default: everything under .rmreco/ (override with RMRECO_HOME).
RMRECO_HOME ?= .rmreco
export RMRECO_HOME
DEMO_BANK := $(RMRECO_HOME)/demo-bank
DEMO_CLIENTS ?= 2000
DEMO_MONTHS ?= 36
DEMO_SEED ?= 7

.PHONY: env demo test test-quick lint bench clean help

help:
	@echo "make demo   build the environment, generate a synthetic bank and load it"
	@echo "make test   build the environment and run every test (lint, types, unit, integration)"
	@echo "make bench  run the benchmarks under benchmarks/"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

env: $(VENV)/.synced

demo: env
	@if [ ! -f "$(DEMO_BANK)/clients.parquet" ]; then \
	  $(BIN)/rmreco generate --clients $(DEMO_CLIENTS) --months $(DEMO_MONTHS) \
	    --seed $(DEMO_SEED) --out "$(DEMO_BANK)"; \
	else echo "synthetic bank already at $(DEMO_BANK)"; fi
	$(BIN)/rmreco db upgrade
	$(BIN)/rmreco ingest "$(DEMO_BANK)"
	@echo
	@echo "Demo bank loaded: tables in $(DEMO_BANK), database $(RMRECO_HOME)/rmreco.db."
	@echo "Ground truth for judging models: $(DEMO_BANK)/truth/."
	@echo "Next: the credit-risk and cross-sell models (issues 3 and 4) train on this bank,"
	@echo "then the service (issue 5) serves them. Try: $(BIN)/rmreco --help"

test: env
	$(BIN)/pytest

test-quick: env
	$(BIN)/pytest -m "not slow and not postgres"

lint: env
	$(BIN)/ruff check rmreco tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: env
	$(BIN)/python benchmarks/bench_generate.py

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
