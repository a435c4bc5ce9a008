#!/usr/bin/env python3
"""The Boostline CDK app: `cdk synth -c stage=<name>` (default: dev).

Synth is offline and deterministic: the config is read and checked first, the
pipeline definition is compiled by the SageMaker SDK with every AWS call refused,
and no resource name holds a timestamp.
"""

from __future__ import annotations

import sys

from aws_cdk import App

from boostline.config import ConfigError, load_config
from stacks import DEFAULT_STAGE, STAGE_CONTEXT, app_context, build_app


def main() -> int:
    app = App(context=app_context())
    stage = app.node.try_get_context(STAGE_CONTEXT) or DEFAULT_STAGE
    config_path = app.node.try_get_context("config")
    try:
        config = load_config(config_path)
        build_app(app, config, stage)
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
