# The two commands of the README: `make demo` and `make test`. Both need only Python 3.10+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
# The branch coverage `make coverage` requires of src/, over what ran (see .ci/run): all of it.
# A line that cannot run in a test says why on the line: `# pragma: no cover - <reason>`.
COVERAGE_MIN ?= 100

.PHONY: test test-full test-all coverage demo lint typecheck tox bench bench-quick clean docs messages

DEMO_STAMP := $(VENV)/.demo-installed

$(BIN)/uv:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
		|| { echo "django-page-images needs Python 3.10 or newer; set PYTHON=python3.12 (say)."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv

# The demo needs the app and its demo extra only (about 60 MB), not the test and dev tools.
$(DEMO_STAMP): pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[demo]"
	@touch $(DEMO_STAMP)

$(STAMP): pyproject.toml | $(BIN)/uv
	# uv installs the hundred-odd packages in seconds (pip: about three minutes).
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[test,dev]"
	@touch $(STAMP)

# The fast tier: in-process tests on SQLite, under a minute on two cores, needs nothing but Python.
test: $(STAMP)
	$(BIN)/python runtests.py fast $(ARGS)

# The full tier: the tests that need PostgreSQL, Redis, Celery workers, processes or Chromium.
test-full: $(STAMP)
	$(BIN)/python runtests.py full $(ARGS)

# Every test once: the fast tier, then the full tier.
test-all: $(STAMP)
	$(BIN)/python runtests.py all $(ARGS)

# After test runs with PAGE_IMAGES_COVERAGE=1: join their data files and judge src/'s branches.
coverage: $(STAMP)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report --fail-under=$(COVERAGE_MIN)

demo: $(DEMO_STAMP)
	$(BIN)/python example_project/run_demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src
	$(BIN)/lint-imports --no-cache

# The documentation site (Sphinx, furo, Markdown pages through MyST), with every warning an error.
docs: $(STAMP)
	$(BIN)/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html

tox: $(STAMP)
	$(BIN)/tox $(ARGS)

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[bench]"
	@touch $(BENCH_STAMP)

# Every target of docs/benchmarks.md, judged as the issue states them; the table is written there.
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks --write-docs $(ARGS)

# Smaller loads; fails only when a figure misses its target by a wide margin (CI runs this).
bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks --quick $(ARGS)

# The catalogs under src/page_images/locale/: every string marked in the package's code and
# templates (new ones arrive untranslated), then the .mo files the wheel ships. Needs GNU gettext
# (apt-get install gettext). Locations by file only, so that a moved line changes no catalog;
# tests/test_locale.py fails while a string is untranslated or a .mo is older than its .po.
messages: $(STAMP)
	cd src/page_images && ../../$(BIN)/django-admin makemessages --all --add-location file \
		--no-obsolete
	cd src/page_images && ../../$(BIN)/django-admin compilemessages

clean:
	rm -rf $(VENV) .tox build dist src/*.egg-info .coverage .coverage.* docs/_build
