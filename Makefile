# Boostline: `make demo` runs the system locally, `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
LANE := .venv-image
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CDK CLI and the IAM policy evaluator, pinned in package-lock.json, in node_modules.
# (Defined before the rules: make expands prerequisites as it reads them.)
NODE_STAMP := node_modules/.installed
STAGE ?= dev
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1
export CDK_DISABLE_CLI_TELEMETRY := true
export MPLBACKEND := Agg

.PHONY: install demo test test-image lint synth bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[infra,dev]'
	touch $(STAMP)

install: $(STAMP)

# The demo checks every access against the synthesized policies: it needs the evaluator.
demo: $(STAMP) $(NODE_STAMP)
	$(BIN)/boostline demo

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory test-image

# The image lane: training_scripts/ on the SageMaker XGBoost 3.0-5 image's Python 3.10 and
# packages, the toolkit's trainer and its Flask server (tests/image). The lane is built once
# into $(LANE) and rebuilt when tests/image/requirements.txt changes; with no Python 3.10
# it fails, saying what to install.
test-image:
	$(PYTHON) tests/image/build_lane.py $(LANE)
	$(LANE)/bin/python -m pytest -q -p no:cacheprovider tests/image tests/training_scripts

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Prints the figures and their ratios to the baselines (not part of `make test`).
bench: $(STAMP)
	$(BIN)/python bench/bench_generator.py
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_inference.py
	$(BIN)/python bench/bench_endpoint.py

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# Offline synth of every stack of $(STAGE) into cdk.out (cdk-nag findings fail it).
synth: $(STAMP) $(NODE_STAMP)
	npx --no-install cdk synth --no-notices --quiet -c stage=$(STAGE) --output cdk.out

clean:
	rm -rf $(VENV) $(LANE) .boostline cdk.out node_modules
