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
CDK := node_modules/.bin/cdk
STAGE ?= dev
# Stacks for `make diff` / `make deploy`: empty for every stack of the stage, or ids such as
# STACKS=Serving (the CLI also takes stack names, boostline-dev-serving).
STACKS ?=
# Extra CDK CLI options for `make diff` / `make deploy`, e.g. CDK_ARGS=--require-approval=never
CDK_ARGS ?=
# `make synth-stages` writes here; `make diff-templates` compares BASE with it.
OUT ?= synth
BASE ?= synth-base
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1
export CDK_DISABLE_CLI_TELEMETRY := true
export MPLBACKEND := Agg

.PHONY: install demo test test-image lint synth synth-stages diff-templates diff deploy bench clean

# The first run downloads about 1 GB of wheels (the CDK libraries, the SageMaker SDK,
# XGBoost, ...): a few minutes; pip prints each package as it goes.
$(STAMP): pyproject.toml
	@echo "==> [1/3] creating the virtual environment $(VENV) ($$($(PYTHON) --version))"
	$(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] upgrading pip"
	$(BIN)/pip install --upgrade pip
	@echo "==> [3/3] installing boostline and its pinned dependencies (first time: a few minutes)"
	$(BIN)/pip install -e '.[infra,dev]'
	touch $(STAMP)
	@echo "==> $(VENV) is ready"

install: $(STAMP)

# The demo checks every access against the synthesized policies: it needs the evaluator.
demo: $(STAMP) $(NODE_STAMP)
	$(BIN)/boostline demo

test: $(STAMP) $(NODE_STAMP)
	@echo "==> ruff"
	$(BIN)/ruff check .
	@echo "==> the main suite (10 to 11 minutes on 2 cores)"
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory test-image

# The image lane: training_scripts/ on the SageMaker XGBoost 3.0-5 image's Python 3.10 and
# packages, the toolkit's trainer and its Flask server (tests/image). The lane is built once
# into $(LANE) and rebuilt when tests/image/requirements.txt changes; with no Python 3.10
# it fails, saying what to install.
test-image:
	@echo "==> the image lane: $(LANE) on Python 3.10 (built once, a few minutes the first time)"
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
	@echo "==> installing the pinned CDK CLI and IAM policy evaluator into node_modules (npm ci)"
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

# Offline synth of every stack of $(STAGE) into cdk.out (cdk-nag findings fail it).
synth: $(STAMP) $(NODE_STAMP)
	$(CDK) synth --no-notices --quiet -c stage=$(STAGE) --output cdk.out

# Offline synth of every stage into $(OUT)/<stage>/*.template.json (scripts/synth_stages.py;
# a stage that fails gets $(OUT)/<stage>/FAILED with the reason, and the target fails).
synth-stages: $(STAMP) $(NODE_STAMP)
	$(BIN)/python scripts/synth_stages.py $(OUT)

# The templates in $(OUT) against those in $(BASE) (both as synth-stages writes them), as
# Markdown on stdout: added, removed and changed resources per stage and stack.
diff-templates:
	$(PYTHON) scripts/template_diff.py $(BASE) $(OUT)

# The deployed stacks of $(STAGE) against this checkout, with the pinned CDK CLI. Needs AWS
# credentials for the stage's account (checked first, in seconds: scripts/aws_identity.py).
diff: $(STAMP) $(NODE_STAMP)
	$(BIN)/python scripts/aws_identity.py $(STAGE)
	$(CDK) diff --no-notices -c stage=$(STAGE) $(STACKS) $(CDK_ARGS)

# Deploys the stacks of $(STAGE) (after `cdk bootstrap`; same checks as `make diff`).
deploy: $(STAMP) $(NODE_STAMP)
	$(BIN)/python scripts/aws_identity.py $(STAGE)
	$(CDK) deploy --no-notices -c stage=$(STAGE) $(or $(STACKS),--all) $(CDK_ARGS)

clean:
	rm -rf $(VENV) $(LANE) .boostline cdk.out node_modules synth synth-base template-diff
