# The two commands of the README: `make demo` and `make test`. Each sets itself up from nothing
# but Python and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
PY_DIRS := $(wildcard src tests bench examples)

.PHONY: demo test lint typecheck docs pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Everything: lite, the CLI extras, the docs toolchain and the test and lint tools.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(DEMO_STAMP)

# Only what the demo runs: the SDK and lite (no test, lint or docs tools).
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[lite]'
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)

typecheck: $(STAMP)
	$(BIN)/mypy --strict src/s2kit

# The documentation site, strictly: a broken link, anchor or docstring reference fails it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck docs pytest

bench: $(STAMP)
	$(BIN)/python bench/lite_official.py

clean:
	rm -rf $(VENV) build dist site .mypy_cache .ruff_cache
