# Every target does its own set-up on a machine with only python3 and make: uv is installed
# into .tools/ (with pip when there is one, else from the package index with a pinned
# sha256: .make/bootstrap.py), then `uv sync` builds .venv from the committed uv.lock.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "$(CURDIR)/.tools/bin/uv")
RUN := $(UV) run --frozen
DEMO_STORE ?= data/store
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
# A first run creates Prefect's database, which can outlast the default 20 s start-up wait.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export PYTHONPATH := $(CURDIR)
# mkdocs-material and a plugin each print a page-long notice about MkDocs 2 on every build.
export NO_MKDOCS_2_WARNING ?= 1
export DISABLE_MKDOCS_2_WARNING ?= true

.PHONY: setup system demo server server-stop test docs docs-serve verify format lint typecheck bench clean

$(UV):
	python3 .make/bootstrap.py uv $(CURDIR)/.tools

# Bytecode compiled at install: every later process imports from .pyc, even where
# PYTHONDONTWRITEBYTECODE is set (as in many CI and container images): 1.7 s less per
# `import flows.features` on this machine class.
.venv/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --compile-bytecode
	@touch $@

setup: .venv/.synced

system:  ## the system libraries the wheels load (names the packages to install when missing)
	@python3 .make/bootstrap.py system

# The whole pipeline in one flow (one Prefect start) on the bundled sample, offline.
demo: setup  ## collect -> features -> train -> predict -> HTML report on data/sample, local store, no server needed
	SMA_STORE=$(DEMO_STORE) SMA_TICKERS=data/sample/tickers.csv SMA_SOURCE=local \
	SMA_SOURCE_PATH=data/sample/prices SMA_START=2013-01-01 SMA_END=2018-02-07 \
	$(RUN) python -m flows.pipeline

# One Prefect server for a day of work: every `python -m flows.<name>` of this checkout uses
# it (the profile .prefect/sma-profiles.toml) instead of starting a temporary one.
server: setup  ## start a local Prefect server in the background (.prefect/) that the flows use
	$(RUN) python -m deployments.server start

server-stop: setup  ## stop it; flows start temporary servers again
	$(RUN) python -m deployments.server stop

test: system setup  ## the test suite on up to 4 worker processes (it starts and stops the servers it needs)
	$(RUN) pytest -q -n auto --maxprocesses 4

# The documentation site: Markdown in docs/ plus reference pages generated from the code
# (docs/reference_pages.py); the test suite builds it with --strict too.
docs: setup  ## build the documentation site into site/ (strict: a broken link fails it)
	$(RUN) mkdocs build --strict --site-dir site

docs-serve: setup  ## serve the site at http://127.0.0.1:8001, rebuilt on every change
	$(RUN) mkdocs serve --dev-addr 127.0.0.1:8001

format: setup
	$(RUN) ruff format .

lint: setup
	$(RUN) ruff check .

typecheck: setup
	$(RUN) pyright

verify: system setup  ## format check, lint, types, tests
	$(RUN) ruff format --check .
	$(RUN) ruff check .
	$(RUN) pyright
	$(RUN) pytest -q -n auto --maxprocesses 4

bench: setup
	$(RUN) python -m benchmarks.collect
	$(RUN) python -m benchmarks.features
	$(RUN) python -m benchmarks.model_quality
	$(RUN) python -m benchmarks.tuning
	$(RUN) python -m benchmarks.stooq_quality
	$(RUN) python -m benchmarks.cold_start

clean:
	rm -rf .venv $(DEMO_STORE) .pytest_cache .ruff_cache site
