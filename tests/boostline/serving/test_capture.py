"""Data capture on a failing disk: a record is written whole or not at all, and readers
skip and count a damaged line instead of failing. Real files, a fake failing write."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from boostline.serving import capture
from boostline.serving.capture import CaptureWriter, capture_record, read_captures
from training_scripts import data_quality as dq
from training_scripts import model_quality as mq

WHEN = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def record(i: int) -> dict:
    return capture_record(
        f"{i},2,3".encode(), "text/csv", b"0.25", "text/csv", f"event-{i}", WHEN, None
    )


class FullDisk:
    """os.write that, on the `fail_on`-th record, writes half of it, then raises ENOSPC."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_on: int) -> None:
        self.real = os.write
        self.calls = 0
        self.fail_on = fail_on
        self.failed = False
        monkeypatch.setattr(capture.os, "write", self)

    def __call__(self, fd: int, data) -> int:
        self.calls += 1
        if self.calls == self.fail_on:
            return self.real(fd, bytes(data[: len(data) // 2]))
        if self.calls == self.fail_on + 1:
            self.failed = True
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.real(fd, data)


def write_three(writer: CaptureWriter) -> list[Path]:
    paths = [writer.write(record(1), WHEN)]
    with pytest.raises(OSError, match="No space left"):
        writer.write(record(2), WHEN)
    paths.append(writer.write(record(3), WHEN))
    return paths


def test_a_write_that_fails_part_way_leaves_no_partial_line(tmp_path, monkeypatch) -> None:
    writer = CaptureWriter(tmp_path, "loans", "AllTraffic")
    disk = FullDisk(monkeypatch, fail_on=2)
    paths = write_three(writer)
    assert disk.failed and paths[0] == paths[1]  # cut back, and the same file goes on
    lines = paths[0].read_bytes().splitlines()
    assert [json.loads(x)["eventMetadata"]["eventId"] for x in lines] == ["event-1", "event-3"]
    counts: Counter = Counter()
    assert [r["eventMetadata"]["eventId"] for r in read_captures(tmp_path, counts)] == [
        "event-1",
        "event-3",
    ]
    assert counts["damaged_capture_records"] == 0


def test_when_the_cut_fails_too_the_next_record_starts_a_new_file(tmp_path, monkeypatch) -> None:
    """The partial line stays; readers skip and count it; the next record is whole."""
    writer = CaptureWriter(tmp_path, "loans", "AllTraffic")
    FullDisk(monkeypatch, fail_on=2)

    def no_truncate(fd: int, size: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(capture.os, "ftruncate", no_truncate)
    paths = write_three(writer)
    assert paths[0] != paths[1]
    damaged = paths[0].read_bytes()
    assert not damaged.endswith(b"\n")  # the half record is there
    assert paths[1].read_bytes().count(b"\n") == 1

    counts: Counter = Counter()
    ids = [r["eventMetadata"]["eventId"] for r in read_captures(tmp_path, counts)]
    assert sorted(ids) == ["event-1", "event-3"]
    assert counts["damaged_capture_records"] == 1 and counts["capture_records"] == 3

    # the monitors' readers: model quality and data quality skip and count it as well
    mq_counts: Counter = Counter()
    assert sorted(r.key for r in mq.read_captures(tmp_path, counts=mq_counts)) == [
        "event-1",
        "event-3",
    ]
    assert mq_counts["unreadable_capture_records"] == 1
    dq_counts: dict[str, int] = {}
    rows = dq.read_rows(dq.find_data_files(tmp_path), ["a", "b", "c"], dq_counts)
    assert sorted(rows) == [["1", "2", "3"], ["3", "2", "3"]]
    assert dq_counts["unreadable_capture_records"] == 1


def test_capture_files_are_private_whatever_the_umask(tmp_path) -> None:
    old = os.umask(0)
    try:
        writer = CaptureWriter(tmp_path, "loans", "AllTraffic")
        path = writer.write(record(1), WHEN)
        writer.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
