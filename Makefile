# cxr-tfx: everything installs from nothing.  `make demo` and `make test` are the quickstart.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9

# A Python 3.10: $PYTHON310 if set, else python3.10 on PATH (if it really runs: a bare pyenv shim
# fails), else the newest of pyenv's versions/3.10.*.
define find_python310
for c in "$$PYTHON310" python3.10 \
    $$(ls -d "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/3.10.*/bin/python3.10 2>/dev/null | sort -V -r); do \
  [ -n "$$c" ] && "$$c" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 \
    && { command -v "$$c"; exit 0; }; \
done; \
echo "error: no Python 3.10 found (tried \$$PYTHON310, python3.10 on PATH, \$$PYENV_ROOT/versions/3.10.*)." >&2; \
echo "       Install one (e.g. 'pyenv install 3.10') or run: make PYTHON310=/path/to/python3.10 ..." >&2; \
exit 1
endef

.PHONY: help install demo test lint bench lock docs docs-check cli-docs clean
help:
	@echo "make demo     - install, generate demo data, run the whole pipeline (LocalDagRunner)"
	@echo "make test     - install, lint (ruff), build the docs (mkdocs --strict), run the tests"
	@echo "make lint     - ruff: syntax errors, undefined names, unused imports and variables"
	@echo "make bench    - install, run the benchmarks (bench/results/)"
	@echo "make docs     - install, build the documentation site into build/site/"
	@echo "make cli-docs - regenerate docs/cli.md from the command line's parser"
	@echo "make lock     - re-resolve requirements.in and requirements-dev.in into the locks"

install: $(STAMP)

$(STAMP): requirements.lock requirements-dev.lock setup.py
	@py=$$($(find_python310)) || exit 1; \
	  echo "Using $$py"; \
	  [ -x $(PY) ] || "$$py" -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip install --python $(PY) --quiet -r requirements.lock -r requirements-dev.lock
	$(UV) pip install --python $(PY) --quiet --no-deps -e .
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/cxr-tfx run --pipeline-root demo_out

test: $(STAMP) lint docs-check
	$(PY) -m pytest tests

# Pyflakes' checks (F) and syntax errors (E9) over all the Python the project ships and tests.
LINT_PATHS := components pipeline tests bench docs
lint: $(STAMP)
	$(VENV)/bin/ruff check --no-cache --select E9,F --line-length 100 $(LINT_PATHS)

# The documentation must build without a warning (broken links, pages missing from the nav);
# into a temporary folder, removed afterwards.
docs-check: $(STAMP)
	@site=$$(mktemp -d) && { $(PY) -m mkdocs build --strict --site-dir "$$site"; rc=$$?; \
	  rm -rf "$$site"; exit $$rc; }

docs: $(STAMP)
	$(PY) -m mkdocs build --strict --site-dir build/site

cli-docs: $(STAMP)
	$(PY) docs/gen_cli.py --write

bench: $(STAMP)
	$(PY) -m bench.run

lock: $(STAMP)
	$(UV) pip compile requirements.in -o requirements.lock --python-version 3.10 \
	  --python-platform x86_64-manylinux_2_36
	$(UV) pip compile requirements-dev.in -c requirements.lock -o requirements-dev.lock \
	  --python-version 3.10 --python-platform x86_64-manylinux_2_36

clean:
	rm -rf demo_out bench/work .pytest_cache
