# Two commands for a newcomer (see README.md):
#   make local   install, then run the whole product locally (moto on 127.0.0.1, no AWS account)
#   make test    install, then run the test suite (Python, and the browser client's own tests in web/)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
ARGS ?=
# The exported model both deployables take: the container image copies it (template.yaml DockerBuildArgs)
# and `sam build` copies its manifest into the scoring function (functions/score_features/Makefile).
MODEL_ID ?= openai/clip-vit-base-patch32
MODEL_OUT ?= weights/models/vit-b-32

# Lock files: the Lambda platform (Python 3.12 on Amazon Linux 2023), one resolution for both architectures
# (x86_64 and arm64: template.yaml Architecture), every file of every platform hashed.
LOCK := $(VENV)/bin/uv pip compile pyproject.toml --python-version 3.12 --universal --generate-hashes --quiet
# Wheels only, for one platform: what `sam build` and the image build would install there.
LAMBDA_ARCHS := x86_64 aarch64
lambda_wheels = --only-binary=:all: --implementation cp --python-version 3.12 \
	--platform manylinux_2_28_$(1) --platform manylinux_2_17_$(1) --platform manylinux2014_$(1)

.PHONY: install web local model test test-export lint lock lambda-wheels bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The browser client's packages (onnxruntime-web; playwright-core and TypeScript for its tests), from its lock.
web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

web: web/node_modules/.installed

# The browser demo needs Node.js only to install onnxruntime-web once; without npm the API still runs.
local: install
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory web; \
	else echo "note: no npm: the browser demo needs onnxruntime-web (install Node.js, then make web)"; fi
	$(PY) -m clip_local $(ARGS)

# openai/clip-vit-base-patch32 → $(MODEL_OUT)/{fp32,int8,text}: needs the Hugging Face hub once, and torch.
# Then the first head that means something: a zero-shot head of the 12 default classes from their prompts
# (weights/example/prompts.txt), which make local registers and serves, and the deploy guide seeds.
model: install
	$(PIP) install -q --disable-pip-version-check -e '.[dev,export]'
	$(PY) weights/export_clip_onnx.py --model-id $(MODEL_ID) --out $(MODEL_OUT) --text
	$(PY) weights/zero_shot_head.py --classes weights/example/classes.txt --prompts weights/example/prompts.txt \
		--model-dir $(MODEL_OUT)/int8 --out $(MODEL_OUT)/zero_shot_head.json

# About 15 minutes on 2 cores: a heading per stage, pytest's progress within each.
test: install web
	@echo "== unit tests (tests/unit, tests/docs: about 5 minutes)"
	$(PY) -m pytest -m "not export" -q tests/unit tests/docs
	@echo "== integration tests on the local stack (tests/integration: about 8 minutes)"
	$(PY) -m pytest -m "not export" -q tests/integration
	@echo "== the browser client's own tests (web/test, Node)"
	cd web && npm test --silent

# Needs the 'export' extra (torch 2.13.0 CPU); run by .ci/run.
test-export: install
	$(PIP) install -q --disable-pip-version-check -e '.[dev,export,minilm,train]'
	$(PY) -m pytest -m export -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy functions/score_features/app.py
	$(VENV)/bin/mypy functions/classify_upload/app.py
	$(VENV)/bin/mypy functions/backfill_batch/app.py
	$(VENV)/bin/mypy functions/rescore_results/app.py
	$(VENV)/bin/mypy functions/evaluate_heads/app.py
	$(VENV)/bin/mypy functions/review_labels/app.py
	$(VENV)/bin/mypy weights/export_mlp_weights.py weights/export_clip_onnx.py weights/zero_shot_head.py weights/train_head.py weights/clip_export bench/
	$(VENV)/bin/cfn-lint template.yaml
	cd web && npm run --silent typecheck

# The SDK and what it brings, which the managed python3.12 runtime provides to zip functions: the layer
# must not shadow them with other versions.
RUNTIME_SDK := boto3 botocore s3transfer jmespath python-dateutil six urllib3

# Recompile the deployables' lock files from pyproject.toml (needs the package index).
lock: install
	$(LOCK) $(foreach p,$(RUNTIME_SDK),--no-emit-package $(p)) -o layers/shared/requirements.txt
	$(LOCK) --extra image -o functions/classify_upload/requirements.txt

# Docker cannot run here: prove both locks resolve to Lambda-platform wheels with matching hashes, and
# build the layer exactly as `sam build` does.
lambda-wheels: install
	rm -rf .lambda-wheels && mkdir -p .lambda-wheels
	$(foreach arch,$(LAMBDA_ARCHS),\
		$(PIP) download -q --no-deps --require-hashes $(call lambda_wheels,$(arch)) \
			-r functions/classify_upload/requirements.txt -d .lambda-wheels/image-$(arch) && \
		$(MAKE) -f layers/shared/Makefile build-SharedLayer ARTIFACTS_DIR=$(CURDIR)/.lambda-wheels/layer-$(arch) \
			PIP=$(PIP) LAMBDA_ARCH=$(arch) && ) true

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .lambda-wheels web/node_modules
