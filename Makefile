# Two commands for a newcomer (see README.md):
#   make local   install, then run the whole product locally (moto on 127.0.0.1, no AWS account)
#   make test    install, then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
ARGS ?=

.PHONY: install local test test-export lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

local: install
	$(PY) -m clip_local $(ARGS)

test: install
	$(PY) -m pytest -m "not export" -q

# Needs the 'export' extra (torch 2.13.0 CPU); run by .ci/run.
test-export: install
	$(PIP) install -q --disable-pip-version-check -e '.[dev,export]'
	$(PY) -m pytest -m export -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy functions/score_features/app.py
	$(VENV)/bin/mypy functions/classify_upload/app.py
	$(VENV)/bin/mypy weights/export_mlp_weights.py weights/export_clip_onnx.py bench/
	$(VENV)/bin/cfn-lint template.yaml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
