# Two commands set everything up: `make book` and `make test` (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS_HASH := $(shell cat requirements.txt pyproject.toml | sha1sum | cut -c1-12)
STAMP := $(VENV)/.stamp-$(DEPS_HASH)

.PHONY: venv book notebooks html live test test-live test-all clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -e .
	@rm -f $(VENV)/.stamp-*; touch $@

# Notebooks re-execute only when their source, src/, data/ or parameters changed; `make book FORCE=1` runs all.
notebooks: venv
	$(PY) -m divdistill.book execute $(if $(FORCE),--force)

html: venv
	$(PY) -m divdistill.book html

# The live page (book/live.md): ONNX export of data/tiny (cached by content hash), `npm ci` in web/, copied into the site.
live: venv
	$(PY) -m divdistill.live build

book: notebooks html live
	@echo "book: $(CURDIR)/_build/html/index.html"

# One torch thread per test process unless told otherwise: the tests' tensors are small, and on a 2-core machine torch's
# own threads mostly wait on each other (the suite ran in 237 s at 1 thread beside a 2-thread training run, 682 s at 2).
# Two pytest-xdist workers ($$TEST_WORKERS), each test file on one of them, so a module's costly fixtures (the notebook
# runs of test_notebooks and test_sdxl_chapters) are built once.
test: venv
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -q -n $${TEST_WORKERS:-2} --dist loadfile -m "not slow and not live"

# The live page in headless Chromium against run_plan (installs chromium via apt-get, onnxruntime-web via npm ci).
test-live: venv
	$(PY) -m pytest -q -s -m live tests/test_live_page.py

test-all: venv
	$(PY) -m pytest -q

clean:
	rm -rf _build book/*.ipynb
