"""Data capture in SageMaker's format, for the local endpoint.

Layout and record (SageMaker Model Monitor's data capture)::

    <root>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm>-<ss>-<mmm>-<uuid>.jsonl

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "...", "encoding": "CSV"},
                     "endpointOutput": {...,"mode": "OUTPUT", ...}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<client id, if sent>",
                       "inferenceTime": "2026-01-01T00:00:00Z"},
     "eventVersion": "0"}

CSV bodies are stored as text with encoding "CSV", JSON (and JSON Lines) as
text with encoding "JSON", anything else base64 with encoding "BASE64".

Each gunicorn worker owns one writer and so one file per hour (the file name
carries a fresh uuid), and writes every record as a single whole line with one
unbuffered append, so workers never interleave partial lines and a reader sees
complete records as soon as they are written. A record is written whole or not at
all: a write that fails part-way (a full disk) is cut back to the file's previous
size, and if even that fails the writer moves on to a fresh file, so a later record
is never appended to a partial line. Readers skip (and count) a line that is not a
whole record rather than failing. Capture files are created with mode 0600 (they
hold request bodies).
"""

from __future__ import annotations

import base64
import json
import os
import random
import threading
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

_TEXT_ENCODINGS = {
    "text/csv": "CSV",
    "application/json": "JSON",
    "application/jsonlines": "JSON",
    "application/x-jsonlines": "JSON",
}


def encode_body(body: bytes, content_type: str | None) -> tuple[str, str]:
    """(data, encoding) for one captured body."""
    media = (content_type or "").partition(";")[0].strip().lower()
    encoding = _TEXT_ENCODINGS.get(media)
    if encoding is not None:
        try:
            return body.decode("utf-8"), encoding
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), "BASE64"


def capture_record(
    request_body: bytes,
    request_content_type: str,
    response_body: bytes,
    response_content_type: str,
    event_id: str,
    inference_time: datetime,
    inference_id: str | None = None,
) -> dict:
    """One capture record, exactly as SageMaker writes it."""
    in_data, in_encoding = encode_body(request_body, request_content_type)
    out_data, out_encoding = encode_body(response_body, response_content_type)
    metadata = {"eventId": event_id}
    if inference_id is not None:
        metadata["inferenceId"] = inference_id
    metadata["inferenceTime"] = inference_time.astimezone(timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    return {
        "captureData": {
            "endpointInput": {
                "observedContentType": request_content_type,
                "mode": "INPUT",
                "data": in_data,
                "encoding": in_encoding,
            },
            "endpointOutput": {
                "observedContentType": response_content_type,
                "mode": "OUTPUT",
                "data": out_data,
                "encoding": out_encoding,
            },
        },
        "eventMetadata": metadata,
        "eventVersion": "0",
    }


class CaptureWriter:
    """Appends capture records under <root>/<endpoint>/<variant>/yyyy/mm/dd/hh/.

    One instance per process (create it after the fork); thread-safe within it.
    """

    def __init__(
        self,
        root: Path,
        endpoint_name: str,
        variant_name: str,
        sampling_percentage: int = 100,
    ) -> None:
        if not 0 <= int(sampling_percentage) <= 100:
            raise ValueError(f"sampling percentage must be 0 to 100, got {sampling_percentage}")
        for label, name in (("endpoint", endpoint_name), ("variant", variant_name)):
            if not name or "/" in name or name in (".", ".."):
                raise ValueError(f"{label} name {name!r} cannot be a folder name")
        self.directory = Path(root) / endpoint_name / variant_name
        self.sampling_percentage = int(sampling_percentage)
        self._random = random.Random()  # seeded from os.urandom, so each worker differs
        self._lock = threading.Lock()
        self._hour: str | None = None
        self._fd: int | None = None

    def sampled(self) -> bool:
        """Whether this request is captured (InitialSamplingPercentage)."""
        if self.sampling_percentage >= 100:
            return True
        return self._random.random() * 100 < self.sampling_percentage

    def write(self, record: dict, when: datetime) -> Path:
        """Append one record as one line; returns the file written."""
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        when = when.astimezone(timezone.utc)
        hour = when.strftime("%Y/%m/%d/%H")
        with self._lock:
            if hour != self._hour or self._fd is None:
                self._open(hour, when)
            fd = self._fd
            size = os.fstat(fd).st_size  # this writer alone appends to its file
            view = memoryview(line)
            try:
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:
                self._undo(fd, size)
                raise
            return self._path

    def _undo(self, fd: int, size: int) -> None:
        """Cut a partly written record off; failing that, never append to this file again."""
        try:
            os.ftruncate(fd, size)
        except OSError:
            self.close_file()

    def _open(self, hour: str, when: datetime) -> None:
        self.close_file()
        folder = self.directory / hour
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{when:%M-%S}-{when.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
        self._path = folder / name
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(self._fd, 0o600)  # whatever the umask: request bodies are private
        self._hour = hour

    def close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._hour = None

    def close(self) -> None:
        with self._lock:
            self.close_file()


def read_captures(root: Path, counts: Counter | None = None) -> list[dict]:
    """Every whole record under root (for tests and local monitoring), oldest file first.

    A line that is not a JSON object (a record cut short by a failed write) is skipped
    and counted in counts["damaged_capture_records"], with counts["capture_records"]
    the lines read.
    """
    counts = counts if counts is not None else Counter()
    records = []
    for path in sorted(Path(root).rglob("*.jsonl")):
        with path.open("rb") as f:
            for line in f:
                if not line.strip():
                    continue
                counts["capture_records"] += 1
                try:
                    record = json.loads(line)
                except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
                    record = None
                if not isinstance(record, dict):
                    counts["damaged_capture_records"] += 1
                    continue
                records.append(record)
    return records
