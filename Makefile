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
# Installed packages are compiled to bytecode once, at install: where PYTHONDONTWRITEBYTECODE is
# set (this kind of machine sets it), Python cannot cache what it compiles, and every process
# (each CLI command, each service worker, each subprocess a test starts) compiled MLflow,
# LightGBM, pandas and the rest again: 4-9 s per process, measured on `rmreco ingest`.
export UV_COMPILE_BYTECODE := 1

# The demo's embedded default: everything under .rmreco/ (override with RMRECO_HOME).
RMRECO_HOME ?= .rmreco
export RMRECO_HOME
# The demo's settings, each passed on only when set (the defaults are `rmreco demo`'s own, in one
# place): DEMO_CLIENTS clients of the demo bank (3,750), DEMO_PORT the port it serves on (8000),
# DEMO_MLFLOW_PORT the port in the MLflow UI command it prints (5050). E.g. DEMO_PORT=8001 make demo

.PHONY: env demo test test-quick lint bench clean help

help:
	@echo "make demo   build the environment, generate and load a synthetic bank, train and"
	@echo "            register every model of models/, create demo users, start the service"
	@echo "make test   build the environment and run every test (lint, types, unit, integration)"
	@echo "make bench  run the benchmarks under benchmarks/"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	$(BIN)/python -m compileall -q -j 0 rmreco
	@touch $@

env: $(VENV)/.synced

demo: env
	$(BIN)/rmreco demo $(if $(DEMO_CLIENTS),--clients $(DEMO_CLIENTS)) \
		$(if $(DEMO_PORT),--port $(DEMO_PORT)) $(if $(DEMO_MLFLOW_PORT),--mlflow-port $(DEMO_MLFLOW_PORT))

# Two test processes (one per core) for everything but the serial tests (timing bounds, a
# PostgreSQL restart, kills), which then run alone; a plain `pytest` runs all of it in one.
# (Three were slower on two cores: 9.3 min against 8.8 for this part.)
test: env
	$(BIN)/pytest -n 2 --dist loadfile -m "not serial"
	$(BIN)/pytest -m serial

test-quick: env
	$(BIN)/pytest -m "not slow and not postgres"

lint: env
	$(BIN)/ruff check rmreco tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: env
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_features.py
	$(BIN)/python benchmarks/bench_service.py
	$(BIN)/python benchmarks/bench_ranking.py
	$(BIN)/python benchmarks/bench_guarantees.py
	$(BIN)/python benchmarks/bench_pages.py

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
