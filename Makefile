# The front door. `make run` and `make test` do all set-up themselves on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv/ and install the project with its dev tools (when missing or stale)

data/demo_payments: | $(STAMP)
	$(PY) -m jobs.demo_data --path data/demo_payments

run: $(STAMP) data/demo_payments ## run the job on local Spark with conf/local.yml and generated demo payments
	$(VENV)/bin/rfm-snapshot --config conf/local.yml

test: $(STAMP) ## run the whole test suite (unit, Delta I/O, process and concurrency tests)
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP) ## quick tests while working: everything not marked slow
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

check: $(STAMP) ## lint, format check and type check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

dist: $(STAMP) ## build the wheel into dist/
	$(PY) -m build --wheel --outdir dist .

clean: ## remove generated data and build output (keeps .venv)
	rm -rf data build dist *.egg-info

.PHONY: help install run test test-unit check dist clean
