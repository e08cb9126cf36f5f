# Every target does its own set-up: on a machine with only python3 and make, uv is
# installed with pip when missing, then `uv sync` builds .venv from the committed uv.lock.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "$(CURDIR)/.tools/bin/uv")
RUN := $(UV) run --frozen
DEMO_STORE ?= data/store
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PYTHONPATH := $(CURDIR)

.PHONY: setup demo test verify format lint typecheck bench clean

$(UV):
	python3 -m pip install --quiet --target $(CURDIR)/.tools uv

.venv/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen
	@touch $@

setup: .venv/.synced

demo: setup  ## the whole pipeline offline on the bundled sample, local store, no server needed
	$(RUN) python -m flows.collect --tickers data/sample/tickers.csv --source local \
		--source-path data/sample/prices --store $(DEMO_STORE) --start 2013-01-01 --end 2018-02-07
	$(RUN) python -m flows.features --store $(DEMO_STORE) --groups seed,risk,alpha158
	$(RUN) python -m flows.train --store $(DEMO_STORE)
	$(RUN) python -m flows.predict --store $(DEMO_STORE)

test: setup  ## the test suite (starts and stops the servers it needs)
	$(RUN) pytest -q

format: setup
	$(RUN) ruff format .

lint: setup
	$(RUN) ruff check .

typecheck: setup
	$(RUN) pyright

verify: setup  ## format check, lint, types, tests
	$(RUN) ruff format --check .
	$(RUN) ruff check .
	$(RUN) pyright
	$(RUN) pytest -q

bench: setup
	$(RUN) python -m benchmarks.collect
	$(RUN) python -m benchmarks.features
	$(RUN) python -m benchmarks.model_quality
	$(RUN) python -m benchmarks.tuning

clean:
	rm -rf .venv $(DEMO_STORE) .pytest_cache .ruff_cache
