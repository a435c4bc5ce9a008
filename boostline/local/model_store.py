"""Unpacked copies of registered models, as an endpoint's container would hold them."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from boostline.registry import ModelPackage


def unpacked_model(package: ModelPackage, root: Path) -> Path:
    """`<root>/models/<group>/<version>/`, unpacked once from the package's model.tar.gz."""
    target = root / "models" / package.data["ModelPackageGroupName"] / str(package.version)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{package.version}-"))
    try:
        with tarfile.open(package.model_tar) as tar:
            tar.extractall(staging, filter="data")  # refuses absolute paths and links out
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.is_dir():  # another process may have unpacked it meanwhile
            raise
    return target
