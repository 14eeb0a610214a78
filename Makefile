# One entry point for every routine job. `make test` bootstraps the virtualenv on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck check bench bench-smoke bench-instructions clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sidestep demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)
	bash bench/setup.sh
	$(BIN)/python -m bench.run --update-docs --json bench/results/latest.json

bench-smoke: $(STAMP)
	$(BIN)/python -m bench.run --smoke

bench-instructions: $(STAMP)
	bash bench/setup.sh
	$(BIN)/python -m bench.instructions

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
