"""Resource names, derived from the project and stage names in the config.

Names users and code need (buckets, pipeline, model package group, endpoint) are
fixed here so that the CDK app, the local runner and the docs agree on them. Every
name carries the stage, so several stages can share one account; bucket names also
carry the account id and region, so they are globally unique without a lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

from boostline.config import BoostlineConfig, ConfigError

BUCKET_PURPOSES = ("raw", "processed", "artifacts", "capture", "monitoring", "access-logs")
ACCOUNT_ID_LENGTH = 12
BUCKET_NAME_LIMIT = 63


@dataclass(frozen=True)
class Names:
    project: str
    stage: str
    region: str

    @property
    def prefix(self) -> str:
        return f"{self.project}-{self.stage}"

    def stack(self, concern: str) -> str:
        return f"{self.prefix}-{concern}"

    def bucket(self, purpose: str, account: str, region: str) -> str:
        """A bucket name; account and region may be CloudFormation tokens or placeholders."""
        if purpose not in BUCKET_PURPOSES:
            raise ValueError(f"unknown bucket purpose {purpose!r}")
        return f"{self.prefix}-{purpose}-{account}-{region}"

    @property
    def pipeline(self) -> str:
        return f"{self.prefix}-training"

    @property
    def model_package_group(self) -> str:
        return f"{self.prefix}-models"

    @property
    def endpoint(self) -> str:
        return f"{self.prefix}-endpoint"

    @property
    def key_alias(self) -> str:
        return f"alias/{self.prefix}"

    @property
    def salt_secret(self) -> str:
        return f"{self.prefix}/pii-salt"

    @property
    def job_prefix(self) -> str:
        """Prefix of role names; IAM role names are global per account."""
        return self.prefix


def names_for(config: BoostlineConfig, stage: str) -> Names:
    """The names of a stage; raise ConfigError when a bucket name would be too long."""
    stage_config = config.stage(stage)
    names = Names(project=config.project, stage=stage, region=stage_config.region)
    longest = max(BUCKET_PURPOSES, key=len)
    length = len(names.bucket(longest, "0" * ACCOUNT_ID_LENGTH, stage_config.region))
    if length > BUCKET_NAME_LIMIT:
        raise ConfigError(
            str(config.source),
            [
                (
                    "project",
                    f"bucket names for stage {stage!r} would be {length} characters "
                    f"(S3 allows {BUCKET_NAME_LIMIT}); shorten the project or stage name",
                )
            ],
        )
    return names
