# The two commands of the README: `make demo` and `make test`. Both need only Python 3.10+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: test demo lint typecheck tox bench bench-quick clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
		|| { echo "django-page-images needs Python 3.10 or newer; set PYTHON=python3.12 (say)."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,dev]"
	@touch $(STAMP)

test: $(STAMP)
	$(BIN)/python runtests.py $(ARGS)

demo: $(STAMP)
	$(BIN)/python example_project/run_demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src
	$(BIN)/lint-imports --no-cache

tox: $(STAMP)
	$(BIN)/tox $(ARGS)

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	@touch $(BENCH_STAMP)

# Every target of docs/benchmarks.md, judged as the issue states them; the table is written there.
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks --write-docs $(ARGS)

# Smaller loads; fails only when a figure misses its target by a wide margin (CI runs this).
bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks --quick $(ARGS)

clean:
	rm -rf $(VENV) .tox build dist src/*.egg-info
