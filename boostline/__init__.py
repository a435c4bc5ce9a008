"""Boostline: a SageMaker XGBoost service as one CDK app, with an embedded local runtime."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("boostline")
except PackageNotFoundError:  # run from a checkout without installing it
    __version__ = "0+checkout"
