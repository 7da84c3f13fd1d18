# Two commands do all set-up on a fresh machine:
#   make bench   creates the environments when missing, runs the default suite, writes the report
#   make test    creates the environments when missing, runs the tests
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: bench test lint env clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

env: $(STAMP)

bench: env
	$(VENV)/bin/membench run --suite default

test: env lint
	$(PY) -m pytest -q

lint: env
	$(VENV)/bin/ruff check harness strategies workloads reports tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
