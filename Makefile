# Two commands for a newcomer: `make up` (the demo) and `make test` (the suite).
# Both install what they need: uv (tools/install_uv.py: the one on PATH, else a private copy
# under .tools/, never into the system Python) and the locked workspace.
SHELL := /bin/bash
PYTHON ?= python3
UV = $(shell $(PYTHON) tools/install_uv.py)

.PHONY: up test lint openapi install

install:
	$(UV) sync --frozen

up: install
	$(UV) run churn up --demo

test: install
	$(UV) run pytest

lint: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run lint-imports
	$(UV) run churn openapi --check
	$(UV) run churn asyncapi --check

openapi: install
	$(UV) run churn openapi
	$(UV) run churn asyncapi
