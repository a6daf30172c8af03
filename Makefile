# The two Quickstart commands. Each sets up its own virtual environment (idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

.PHONY: setup test reproduce lint
setup: $(VENV)/.installed

test: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benches
	$(PY) -m pytest

reproduce: $(VENV)/.installed
	$(VENV)/bin/structpose reproduce

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benches
	$(VENV)/bin/ruff format --check src tests benches
