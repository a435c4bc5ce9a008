"""The SageMaker Python SDK (v3), set up to build pipeline definitions offline.

The SDK is used only as a definition compiler at synth time. What keeps it offline:
the region is set before import; role validation and telemetry are off; the SDK
defaults config is passed in (so no local or admin config file can change the
definition); the session's default bucket is set, so no HeadBucket or CreateBucket
happens; credentials are static dummies, so botocore never asks the instance
metadata service; and every request botocore would send is refused, so a code path
that still reaches for AWS fails the synth loudly instead of calling out.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

OFFLINE_ENV = {
    "SAGEMAKER_VALIDATE_ROLE": "false",
    # Keep botocore from reading the user's ~/.aws files for the dummy session.
    "AWS_EC2_METADATA_DISABLED": "true",
}
# Without this the SDK reads /etc/xdg/sagemaker/config.yaml and ~/.config/sagemaker.
SDK_DEFAULTS: dict[str, Any] = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}
UNUSED_BUCKET = "boostline-offline-synth-unused"
_QUIET_LOGGERS = (
    "sagemaker",
    "sagemaker.config",
    "sagemaker.core",
    "sagemaker.core.utils.utils",
    "sagemaker.mlops",
    "sagemaker.serve",
)


class OfflineViolation(RuntimeError):
    """The SDK tried to call AWS while building a definition."""


def _refuse(request: Any, **_: Any) -> None:
    raise OfflineViolation(
        f"the SageMaker SDK tried to call AWS at synth time ({request.method} {request.url})"
    )


def offline_session(region: str) -> Any:
    """A PipelineSession that cannot reach AWS."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    # The SDK logs at DEBUG/INFO and warns that nothing runs under a PipelineSession;
    # that is the point here, so keep synth output to what matters.
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")

    boto_session = boto3.Session(
        region_name=region, aws_access_key_id="offline", aws_secret_access_key="offline"
    )
    boto_session.events.register("before-send", _refuse)
    session = PipelineSession(
        boto_session=boto_session,
        default_bucket=UNUSED_BUCKET,
        sagemaker_config=SDK_DEFAULTS,
    )
    # default_bucket() would otherwise check (and create) the bucket on first use.
    session._default_bucket = UNUSED_BUCKET
    return session


def image_uri(framework_version: str, region: str) -> str:
    """The SageMaker XGBoost image URI, from the SDK's bundled image config (no lookup)."""
    from sagemaker.core import image_uris

    return image_uris.retrieve(framework="xgboost", region=region, version=framework_version)
