# One entry point for every routine job. `make test` bootstraps the virtualenv on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := $(shell find src/sidestep -name '*.py')
COMPILED := build/compiled/.built

.PHONY: install demo test test-compiled compile uncompile lint typecheck check bench bench-smoke bench-instructions soak clean

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

# The whole suite again, against a copy of src/ whose request path is compiled by mypyc (tools/compile.py).
test-compiled: $(COMPILED)
	SIDESTEP_EXPECT_COMPILED=1 PYTHONPATH=build/compiled/src $(BIN)/python -m pytest -p no:cacheprovider

$(COMPILED): $(STAMP) $(SOURCES) tools/compile.py
	$(BIN)/python tools/compile.py --into build/compiled
	touch $@

compile: $(STAMP)
	$(BIN)/python tools/compile.py

uncompile: $(STAMP)
	$(BIN)/python tools/compile.py --clean

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/lint-imports --no-cache  # the layers and no-cycles contracts in pyproject.toml

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test test-compiled

bench: $(STAMP)
	bash bench/setup.sh
	$(BIN)/python -m bench.run --update-docs --json bench/results/latest.json

bench-smoke: $(STAMP)
	$(BIN)/python -m bench.run --smoke

bench-instructions: $(STAMP)
	bash bench/setup.sh
	$(BIN)/python -m bench.instructions

# A few minutes of mid-stream failures, invented model names and hostile bodies through a gateway process:
# RSS, file descriptors and /metrics must stay flat (bench/soak.py). Not part of `make check`.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache
