# The README's two commands: `make demo` (the whole workflow on generated data) and `make test`.
# Both create and reuse a local virtual environment in .venv.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.trinet-installed
DEMO_DIR ?= runs/demo

.PHONY: install demo test test-fast lint clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "trinet needs Python >= 3.11; run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV) || { $(PYTHON) -m pip install --quiet --user virtualenv && $(PYTHON) -m virtualenv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash experiments/demo.sh $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/python -m flake8 trinet tests benchmarks data experiments examples train.py embed.py evaluate.py
	$(BIN)/python -m mypy trinet

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache
