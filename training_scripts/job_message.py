"""The message a SageMaker Processing job leaves behind.

SageMaker shows `/opt/ml/output/message` as the job's exit message (the
monitors' `Completed...` line) or its failure reason. `BOOSTLINE_OUTPUT_DIR`
moves it when the job runs on this machine.
"""

from __future__ import annotations

import os
from pathlib import Path


def message_dir() -> Path:
    return Path(os.environ.get("BOOSTLINE_OUTPUT_DIR", "/opt/ml/output"))


def write_message(message: str, *, create: bool = True) -> None:
    """Write the message; with create=False only where the folder exists (a container)."""
    out = message_dir()
    try:
        if create:
            out.mkdir(parents=True, exist_ok=True)
        elif not out.is_dir():
            return
        (out / "message").write_text(message + "\n", encoding="utf-8")
    except OSError:
        pass  # the message is a courtesy; the exit code and stderr still tell
