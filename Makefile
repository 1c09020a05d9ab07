# The kit's commands. On a fresh machine `make lab` or `make test` is all the set-up there is:
# they install uv if missing, create .venv from the locked uv.lock (odlkit editable) and go.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PORT ?= 8888
# Tests use both cores; each test file runs on one worker (module fixtures such as a virtual
# board carry state from test to test), except that each whole-notebook run is a unit of its own
# and the costliest units start first (tests/conftest.py, tests/scope_seconds.json).
WORKERS ?= 2

.PHONY: help env lab test test-fast release pretrain headers benchmarks slides lint clean

help:
	@echo "make lab         set up (first time) and open JupyterLab on the course"
	@echo "make test        set up (first time) and run the whole test suite (quick mode)"
	@echo "make test-fast   the lane before a commit: no notebook, browser, ARM, nbgrader or slow (measured >= 10 s under load) tests"
	@echo "make release     regenerate the student notebooks in chapters/ and labs/ with nbgrader"
	@echo "make pretrain    retrain the committed backbone (deterministic)"
	@echo "make headers     regenerate every sketch's headers (odlkit.sketches) and the ODLEngine example's"
	@echo "make benchmarks  run every benchmark in full mode (tables + benchmarks/results/*.json)"
	@echo "make slides      build HTML and PDF of every deck in slides/"

# --- environment ------------------------------------------------------------------------------
# --compile-bytecode: this image sets PYTHONDONTWRITEBYTECODE=1, so without it every process
# compiles what it imports from source: `import tensorflow, keras` costs 22 s of CPU uncompiled,
# 9.5 s compiled; nbgrader 7.2 -> 4.4 s (measured at load ~8). Compiling once costs ~90 s of CPU.
$(VENV)/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || { echo "installing uv"; python3 -m pip install --quiet uv; }
	$(UV) sync --frozen --compile-bytecode
	@touch $@

env: $(VENV)/.synced

# --- the two commands --------------------------------------------------------------------------
# Opens the course's landing page (START_HERE.ipynb). Students get no nbgrader instructor tools
# (.jupyter-student/labconfig/page_config.json); `make lab ROLE=instructor` keeps them.
lab: env
	$(if $(filter instructor,$(ROLE)),,JUPYTER_CONFIG_PATH="$(CURDIR)/.jupyter-student$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}") $(VENV)/bin/jupyter lab --notebook-dir=. --port=$(PORT) --LabApp.default_url=/lab/tree/START_HERE.ipynb $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

test: env
	ODL_QUICK=1 $(VENV)/bin/pytest -n $(WORKERS) --dist loadfile $(PYTEST_ARGS)

# The lane to run before every commit (issue 16: a few minutes): unit and integration tests of
# odlkit, the virtual board, the C++ host tests, the layout checks. Leaves out whole-notebook
# runs, the JupyterLab-in-Chromium tests, the ARM (qemu, real-core compile) tests, the nbgrader
# release/autograde runs (`grading`) and every test marked slow, which includes each test whose
# call took >= 10 s in the recorded run (tests/test_seconds.json, tests/conftest.py; ~2 s quiet);
# `make test` runs all of them. Measured: see tests/README.md.
FAST := not notebook and not slow and not browser and not arm and not grading
test-fast: env
	ODL_QUICK=1 $(VENV)/bin/pytest -n $(WORKERS) --dist loadfile -m "$(FAST)" $(PYTEST_ARGS)

# --- course maintenance ------------------------------------------------------------------------
release: env
	$(PY) -m odlkit.grading release

pretrain: env
	$(PY) -m odlkit.pretrain

# Every sketch of the registry (odlkit.sketches): sketch_config.h + odl_model_data.h; then the
# ODLEngine library example's headers.
headers: env
	$(PY) -m odlkit.export.sketch_headers --all
	$(PY) arduino_sketches/ODLEngine/extras/make_example_data.py

benchmarks: env
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

slides: env
	$(PY) slides/build.py

lint: env
	$(VENV)/bin/ruff check .

clean:
	rm -rf build .pytest_cache .ruff_cache tests/artifacts
