# Everything runs from .venv, built from pyproject.toml when missing or out of date.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck check-all bench bench-quick clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -qq --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install -qq --disable-pip-version-check -e '.[dev,postgres]'
	@# bytecode now, as a pip install of the package makes it: where PYTHONDONTWRITEBYTECODE
	@# is set, every start would otherwise compile every module of src/ (0.1-0.2 s)
	@$(BIN)/python -m compileall -q src
	@touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/smsbridge demo

test: $(STAMP)
	@$(BIN)/python -m pytest

bench: $(STAMP)
	@$(BIN)/python bench/all.py

bench-quick: $(STAMP)
	@$(BIN)/python bench/all.py --quick

lint: $(STAMP)
	@$(BIN)/ruff check src tests bench
	@$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	@$(BIN)/mypy

check-all: lint typecheck test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
