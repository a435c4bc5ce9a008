"""What a SageMaker job leaves behind when it ends.

SageMaker shows a Processing job's `/opt/ml/output/message` as its exit message (the
monitors' `Completed...` line) or its failure reason. `BOOSTLINE_OUTPUT_DIR` moves it
when the job runs on this machine. A failing processing script also prints the
`Boostline failure: ` line below, so every step's log tells its reason the same way.

A training job's `/opt/ml/output/failure` does not survive in the XGBoost image: when
the script exits non-zero the toolkit overwrites it with `ExecuteUserScriptError:
Command "..."`. So train.py also prints its reason on stderr as one line starting
with FAILURE_LINE_PREFIX; stderr lands in CloudWatch Logs
(/aws/sagemaker/TrainingJobs), where the cloud path reads it, and the local training
job reads it from the host's output the same way.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

FAILURE_LINE_PREFIX = "Boostline failure: "
FAILURE_LINE_LIMIT = 1000


def print_failure(reason: str) -> None:
    """`Boostline failure: <reason>` on stderr, as one line (whitespace folded, cut).

    The line goes to the job's log and on to whoever is told of the failure: the
    reason must name no personal data and quote no raw rows.
    """
    line = " ".join(reason.split())[:FAILURE_LINE_LIMIT]
    print(f"{FAILURE_LINE_PREFIX}{line}", file=sys.stderr, flush=True)


def report_failure(message: str) -> None:
    """A processing script's failure: the log line, and the message file (ExitMessage)."""
    print_failure(message)
    write_message(message)


def positions_only(arrow_message: str) -> str:
    """Where pyarrow's CSV reader failed, without the row or value its message quotes."""
    where = re.findall(r"Row #\d+|column #\d+|Expected \d+ columns, got \d+", arrow_message)
    return "not readable as CSV" + (f" ({', '.join(where)})" if where else "")


def read_failure_line(log: str) -> str | None:
    """The reason of the last `Boostline failure: ` line of a job's log, if any."""
    for line in reversed(log.splitlines()):
        if line.startswith(FAILURE_LINE_PREFIX):
            return line[len(FAILURE_LINE_PREFIX) :].strip() or None
    return None


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
