#!/usr/bin/env python3
"""Who `make diff` / `make deploy` would act as, or why they cannot: checked before the CDK CLI.

    python scripts/aws_identity.py STAGE [--config FILE]

Prints the caller's ARN and account, and the stage's region (from the config). Exits 1
with one line saying what is missing when there are no AWS credentials, when STS does not
answer within a few seconds (no network), or when the stage pins another account. Without
it the CLI, finding no credentials, can wait on the instance metadata service and then
print a less direct error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TIMEOUT = 10  # seconds to connect and to read, one attempt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage")
    parser.add_argument("--config", help="default: config/boostline.yaml")
    args = parser.parse_args(argv)
    stage_name = args.stage

    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    from boostline.config import ConfigError, load_config

    try:
        stage = load_config(args.config).stage(stage_name)
    except (ConfigError, KeyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    session = boto3.Session(region_name=stage.region)
    try:
        credentials = session.get_credentials()
    except BotoCoreError as error:
        print(f"error: reading the AWS credentials failed: {error}", file=sys.stderr)
        return 1
    if credentials is None:
        print(
            f"error: no AWS credentials for stage {stage_name!r} (region {stage.region}): set "
            "AWS_PROFILE (after `aws sso login` or `aws configure`) or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, then run again",
            file=sys.stderr,
        )
        return 1
    config = Config(connect_timeout=TIMEOUT, read_timeout=TIMEOUT, retries={"max_attempts": 1})
    try:
        identity = session.client("sts", config=config).get_caller_identity()
    except (BotoCoreError, ClientError) as error:
        print(
            f"error: AWS STS did not confirm the credentials ({type(error).__name__}: {error})",
            file=sys.stderr,
        )
        return 1
    account = identity.get("Account", "")
    if stage.account and stage.account != account:
        print(
            f"error: stage {stage_name!r} deploys to account {stage.account}; these "
            f"credentials are for account {account} ({identity.get('Arn')})",
            file=sys.stderr,
        )
        return 1
    print(f"stage {stage_name}: {identity.get('Arn')} (account {account}), region {stage.region}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
