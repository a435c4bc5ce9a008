"""The work directory: local stand-ins for the buckets, registry and jobs.

<workdir>/buckets/raw/            raw data (the raw-data bucket)
<workdir>/buckets/processed/<run>/ preprocessing outputs
<workdir>/buckets/artifacts/<run>/ model artifacts, evaluation, reports
<workdir>/jobs/<job-name>/         each job's SageMaker-style directories
<workdir>/runs/<run>.json          pipeline execution records
<workdir>/secrets/pii-salt         the salt for hashed PII (created once)
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WORKDIR = Path(".boostline")


@dataclass(frozen=True)
class Workdir:
    root: Path

    @classmethod
    def at(cls, path: str | Path | None) -> Workdir:
        root = Path(path) if path is not None else DEFAULT_WORKDIR
        root.mkdir(parents=True, exist_ok=True)
        return cls(root.resolve())

    def bucket(self, name: str) -> Path:
        path = self.root / "buckets" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def job_dir(self, name: str) -> Path:
        return self.root / "jobs" / name

    @property
    def runs(self) -> Path:
        path = self.root / "runs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def pii_salt(self) -> str:
        """A random salt kept in the workdir, made on first use (mode 0600)."""
        path = self.root / "secrets" / "pii-salt"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first
                return path.read_text().strip()
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return path.read_text().strip()
