# Two commands for a newcomer: `make up` (the demo) and `make test` (the suite).
# Both install what they need: uv (from PyPI, if missing) and the locked workspace.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")

.PHONY: up test lint openapi install

$(UV):
	python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

install: $(UV)
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

openapi: install
	$(UV) run churn openapi
