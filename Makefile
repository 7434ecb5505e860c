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

.PHONY: help install demo test test-fast lint typecheck bench lock docs docs-check cli-docs clean image
help:
	@echo "make demo     - install, generate demo data, run the whole pipeline (LocalDagRunner)"
	@echo "make test     - install, lint (ruff), type-check (mypy), build the docs (mkdocs --strict),"
	@echo "                run the tests"
	@echo "make test-fast - install, run the tests not marked slow (tests/conftest.py): < 2 minutes"
	@echo "make lint     - ruff: syntax errors, undefined names, unused imports and variables,"
	@echo "                import order (.ci/ruff.toml)"
	@echo "make typecheck - mypy over the modules that load no TensorFlow, TFX or Beam"
	@echo "make bench    - install, run the benchmarks (bench/results/)"
	@echo "make docs     - install, build the documentation site into build/site/"
	@echo "make cli-docs - regenerate docs/cli.md from the command line's parser"
	@echo "make lock     - re-resolve requirements.in and requirements-dev.in into the locks"
	@echo "make image    - build the Dockerfile's image (docker or podman) as cxr-tfx:<version>,"
	@echo "                the image \`cxr-tfx compile\` uses by default (docs/kubeflow.md)"

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

test: $(STAMP) lint typecheck docs-check
	$(PY) -m pytest tests

# Pure modules and executors on tiny files: no whole-pipeline runs, no subprocess pipelines, no
# KFP harness, no portable Beam. tests/conftest.py marks the rest `slow`.
test-fast: $(STAMP)
	$(PY) -m pytest tests -m 'not slow'

# Pyflakes' checks (F), syntax errors (E9) and import order (I) over all the Python the project
# ships and tests; settings in .ci/ruff.toml (`ruff check --config .ci/ruff.toml --fix` sorts).
LINT_PATHS := components pipeline tests bench docs
lint: $(STAMP)
	$(VENV)/bin/ruff check --no-cache --config .ci/ruff.toml $(LINT_PATHS)

# mypy over the pure modules: those under components/ that import no TensorFlow, TFX or Beam at
# module level (tensorflow_metadata's protos are fine), checked alone: --follow-imports=silent
# reads the modules they import without reporting them. Not yet listed (pure, but their errors
# need more than annotations): class_balance/{anomalies,balance,drift,html_report,image_stats,
# measure}.py, image_example_gen/split_history.py. Its cache goes into the venv.
TYPED_MODULES := components/__init__.py components/errors.py components/features.py components/options.py \
  $(addprefix components/class_balance/,__init__.py config.py image_findings.py scan_result.py) \
  $(addprefix components/image_example_gen/,__init__.py assignment.py config.py dicom.py \
    duplicates.py files.py fingerprint.py folders.py image_header.py index.py mask_check.py spans.py \
    staging.py summary.py perceptual.py quality.py shortcut.py findings.py image_facts.py \
    near_duplicate_pairs.py shard_sizing.py) \
  $(addprefix components/schema_gen/,__init__.py class_domain.py precheck.py) \
  components/trainer/__init__.py components/trainer/config.py components/trainer/report.py \
  components/trainer/predict.py \
  components/transform/__init__.py components/transform/config.py
typecheck: $(STAMP)
	$(VENV)/bin/mypy --ignore-missing-imports --follow-imports=silent --python-version 3.10 \
	  --cache-dir $(VENV)/.mypy_cache $(TYPED_MODULES)

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

# The image KFP's tasks run (the Dockerfile), tagged with the package version (setup.py): the
# tag `cxr-tfx compile --image` defaults to (pipeline/configs.py, DEFAULT_IMAGE). Needs no venv.
IMAGE_NAME := cxr-tfx
VERSION := $(shell sed -n "s/^ *version='\([^']*\)',.*/\1/p" setup.py)
image:
	@engine=$$(command -v docker || command -v podman) || { \
	  echo "error: make image needs docker or podman on PATH, and neither is installed." >&2; \
	  echo "       Install one, or build the Dockerfile where one is: docker build -t $(IMAGE_NAME):$(VERSION) ." >&2; \
	  exit 1; }; \
	echo "$$engine build -t $(IMAGE_NAME):$(VERSION) --build-arg VERSION=$(VERSION) ."; \
	"$$engine" build -t $(IMAGE_NAME):$(VERSION) --build-arg VERSION=$(VERSION) .

clean:
	rm -rf demo_out bench/work .pytest_cache
