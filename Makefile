# Two commands on a fresh machine (Python 3.11, Node and make):
#   make demo   run the whole job against the embedded SharePoint emulator
#   make test   lint + typecheck + every test (starts the emulator and Azurite itself)
# While developing:
#   make lint        ruff check and ruff format --check (changes nothing)
#   make fmt         ruff format, then ruff check --fix (changes files)
#   make typecheck   mypy over what pyproject's [tool.mypy] files lists
#   make screenshots regenerate the README's workbook pictures from the demo (needs LibreOffice)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

# Python's default is to cache compiled modules (__pycache__, git-ignored). Some images set
# PYTHONDONTWRITEBYTECODE, and then every `sp-sync` process compiles sp_sync's 65 modules from
# source again (about 0.2 s CPU each time): the suite starts hundreds of them and the night
# benchmark measures one. Recipes run with the default instead.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test lint fmt typecheck bench emulator clean install screenshots mutation

# sp_sync/__init__.py holds the version (pyproject reads it): reinstall so the metadata follows.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml sp_sync/__init__.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

install: $(STAMP) $(NODE_STAMP)

demo: $(STAMP)
	$(PY) -m sp_sync demo

# README screenshots from the current demo: LibreOffice (soffice) → PDF → pdftoppm → PNG.
screenshots: $(STAMP)
	$(PY) docs/images/screenshots.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Fixes first, then formatting, so what the fixes wrote is formatted too; the exit status is the
# linter's (non-zero when something is left that needs a hand).
fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix .; status=$$?; $(VENV)/bin/ruff format .; exit $$status

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# How the tests are spread over the workers (--dist loadfile): pyproject's pytest addopts.
# Three workers on two cores: a worker spends a good part of its time waiting (sp-sync children,
# servers, the timeouts and storage retry schedules the reliability tests assert), and the third
# fills those waits. Measured on the shared machine (quiet figures: README): at a load average
# of about 6, pytest took 7 min 59 s with three workers, 12 min 49 s to 14 min 10 s with two.
# Lint and typecheck (the commands of `make lint typecheck`) start first and run beside the
# tests instead of before them: mypy without its cache costs about a minute, and the tests leave
# a core idle often enough (waiting for subprocesses, servers and timeouts) to absorb it. Their
# output follows the tests'; `make test` fails when any of them fails. No $(MAKE) in this
# recipe: `make -n test` (tests/test_packaging.py) would run it instead of printing it.
test: $(STAMP) $(NODE_STAMP)
	@checks_log=$$(mktemp); \
	{ $(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy; } \
		>"$$checks_log" 2>&1 & checks=$$!; \
	$(PY) -m pytest -n 3; tests=$$?; \
	wait $$checks; checked=$$?; cat "$$checks_log"; rm -f "$$checks_log"; \
	test $$tests -eq 0 && test $$checked -eq 0

bench: $(STAMP) $(NODE_STAMP)
	$(PY) -m benchmarks

emulator: $(STAMP)
	$(PY) -m sp_emulator --demo

clean:
	rm -rf $(VENV) node_modules .sp-sync rollups .pytest_cache .mypy_cache .ruff_cache

# --- Mutation testing (issue 17 item 8; scores and accepted survivors in tests/MUTATION.md) -------
# mutmut 3 is installed on demand: `make test` does not need it. The modules and the tests it
# runs are in pyproject.toml ([tool.mutmut]); mutants/ is rebuilt from scratch every time.
# CPU-heavy (about 1,500 mutants; 30-60 minutes on 2 cores). One module or function at a time:
#   make mutation MUTANTS='sp_sync.sharepoint.retry.*'   (mutmut's mutant-name globs)
MUTMUT_VERSION := 3.8.1
MUTANTS ?=
mutation: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check mutmut==$(MUTMUT_VERSION)
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children 2 $(MUTANTS)
	$(PY) tests/mutation_scores.py
