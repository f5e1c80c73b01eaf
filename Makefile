# The two commands of the README: `make demo` (the main job) and `make test`.
# Both set everything up from nothing: virtualenv, packages, the Kafka broker.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install demo test lint bench kafka-up kafka-down clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

## The main job: broker up, topics, worker, demo traffic, funnel from ClickHouse.
demo: install
	$(BIN)/leadflow kafka up
	$(BIN)/leadflow topics apply
	$(BIN)/leadflow demo

## All tests: unit, integration and end-to-end. The test session starts the
## local broker itself if it is not running, and stops it again afterwards.
## The dashboard is tested in Debian's headless Chromium, installed here once,
## the AsyncAPI document with the AsyncAPI parser from npm, likewise.
test: install
	scripts/ensure-chromium.sh
	scripts/ensure-asyncapi-parser.sh
	$(BIN)/pytest

## Benchmarks (figures, nothing asserted) into bench/RESULTS.md, on a broker of
## their own; under 15 minutes on a quiet 2-core machine.
bench: install
	$(BIN)/python -m bench.suite

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy pipeline agents schemas bench
	$(BIN)/lint-imports

kafka-up: install
	$(BIN)/leadflow kafka up

kafka-down: install
	$(BIN)/leadflow kafka down

clean:
	-$(BIN)/leadflow kafka down
	rm -rf .leadflow $(VENV)
