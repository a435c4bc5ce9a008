"""preprocess.py: the encode pass reads exactly the raw files the fit pass read.

The fit pass records each raw file's key, size and digest in its partial; the encode pass
refuses, before any output, a file added, removed, dealt to another host or resized, and
verifies each digest as it reads, removing what it wrote when a file differs.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_loans import HEADER, make_rows, write_csv, write_schema

from training_scripts import preprocess as pp
from training_scripts import preprocess_stats as stats

SCRIPT = Path(pp.__file__)
HOSTS = ["algo-1", "algo-2"]
SMALL = pp.Settings(block_bytes=1 << 16)  # several batches a file


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    return write_schema(tmp_path)


def book(tmp_path: Path, files: int = 4, rows: int = 900) -> dict[str, list[list[str]]]:
    """`files` raw files dealt to two hosts as ShardedByS3Key does: sorted file i to host
    i % 2; {key: rows}."""
    parts = {}
    for i in range(files):
        key = f"part-{i}.csv"
        parts[key] = make_rows(rows, seed=i, start=i * rows)
        write_csv(tmp_path / "in" / HOSTS[i % 2] / key, parts[key])
    return parts


def fit(tmp_path: Path, schema: Path, hosts: list[str] = HOSTS) -> None:
    for host in hosts:
        pp.run_fit(
            tmp_path / "in" / host, schema, tmp_path / "fit", SMALL, salt="s", hosts=hosts,
            host=host,
        )  # fmt: skip


def encode(tmp_path: Path, schema: Path, host: str, hosts: list[str] = HOSTS) -> dict:
    return pp.run_encode(
        tmp_path / "in" / host, schema, tmp_path / "fit", tmp_path / "out" / host, SMALL,
        salt="s", hosts=hosts, host=host,
    )  # fmt: skip


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def same_size_change(path: Path, row: int) -> list[str]:
    """Flip the grade of data row `row` (A <-> B): the same bytes count, other content."""
    lines = path.read_bytes().split(b"\n")
    cells = lines[row + 1].split(b",")
    grade = HEADER.index("grade")
    cells[grade] = b"B" if cells[grade] == b"A" else b"A"
    lines[row + 1] = b",".join(cells)
    before = path.stat().st_size
    path.write_bytes(b"\n".join(lines))
    assert path.stat().st_size == before
    return [c.decode() for c in cells]


def assert_quotes_no_row(message: str, parts: dict[str, list[list[str]]], *more: list[str]) -> None:
    for row in [*(row for rows in parts.values() for row in rows), *more]:
        for cell in (row[0], row[1], row[2], ",".join(row)):
            assert cell not in message, message


def test_the_fit_pass_records_each_files_key_size_and_digest(tmp_path: Path, schema_file) -> None:
    book(tmp_path)
    fit(tmp_path, schema_file)
    for host, keys in (
        ("algo-1", ["part-0.csv", "part-2.csv"]),
        ("algo-2", ["part-1.csv", "part-3.csv"]),
    ):
        data = json.loads((tmp_path / "fit" / f"fit-{host}.json").read_text())
        assert data["format"] == "boostline-preprocess-fit/2"
        expected = [
            {
                "key": key,
                "bytes": (tmp_path / "in" / host / key).stat().st_size,
                "digest": "blake2b:"
                + hashlib.blake2b(
                    (tmp_path / "in" / host / key).read_bytes(), digest_size=32
                ).hexdigest(),
            }
            for key in keys
        ]
        assert data["files"] == keys and data["inputs"] == expected
    merged = stats.merge(stats.read_partials(tmp_path / "fit"))
    assert merged.file_hosts == {
        "part-0.csv": "algo-1",
        "part-1.csv": "algo-2",
        "part-2.csv": "algo-1",
        "part-3.csv": "algo-2",
    }
    assert [f.key for f in merged.partial("algo-2").inputs] == ["part-1.csv", "part-3.csv"]


def test_unchanged_input_is_encoded_on_every_host(tmp_path: Path, schema_file: Path) -> None:
    parts = book(tmp_path)
    fit(tmp_path, schema_file)
    reports = [encode(tmp_path, schema_file, host) for host in HOSTS]
    assert reports[0]["status"] == reports[1]["status"] == "completed"
    assert reports[0]["rows_read"] == sum(len(rows) for rows in parts.values())
    for host in HOSTS:
        assert (tmp_path / "out" / host / "validation" / f"validation-{host}.csv").is_file()


def test_a_file_changed_in_content_at_the_same_size_fails_naming_it_and_keeps_nothing(
    tmp_path: Path, schema_file: Path
) -> None:
    parts = book(tmp_path)
    fit(tmp_path, schema_file)
    # near the end of the host's second file: this host has written outputs by then
    cells = same_size_change(tmp_path / "in" / "algo-1" / "part-2.csv", row=850)
    with pytest.raises(pp.InputChanged) as error:
        encode(tmp_path, schema_file, "algo-1")
    message = str(error.value)
    assert message.startswith(
        "raw file part-2.csv changed after the fit pass read it (same size, another blake2b digest)"
    ), message
    assert "host algo-1 keeps no output" in message
    assert_quotes_no_row(message, parts, cells)
    assert files_under(tmp_path / "out" / "algo-1") == []
    assert encode(tmp_path, schema_file, "algo-2")["status"] == "completed"


def test_a_change_that_breaks_a_row_is_reported_as_the_change(tmp_path: Path, schema_file) -> None:
    parts = book(tmp_path, files=2, rows=3000)
    fit(tmp_path, schema_file)
    path = tmp_path / "in" / "algo-2" / "part-1.csv"
    data = bytearray(path.read_bytes())
    at = data.index(b"\nAPP-05500,") + 10  # in a later batch than the first
    assert data[at : at + 1] == b","
    data[at : at + 1] = b";"  # a row one field short: pyarrow would fail on it
    path.write_bytes(bytes(data))
    with pytest.raises(pp.InputChanged, match=r"raw file part-1\.csv changed after") as error:
        encode(tmp_path, schema_file, "algo-2")
    assert_quotes_no_row(str(error.value), parts)
    assert files_under(tmp_path / "out" / "algo-2") == []


def test_a_file_appended_to_is_refused_before_any_output(tmp_path: Path, schema_file) -> None:
    book(tmp_path)
    fit(tmp_path, schema_file)
    path = tmp_path / "in" / "algo-1" / "part-0.csv"
    before = path.stat().st_size
    with path.open("a", newline="") as f:
        csv.writer(f).writerows(make_rows(5, start=90_000))
    with pytest.raises(pp.InputChanged) as error:
        encode(tmp_path, schema_file, "algo-1")
    assert f"changed in size: part-0.csv ({before} bytes then, {path.stat().st_size} now)" in (
        str(error.value)
    )
    assert not (tmp_path / "out" / "algo-1").exists()


def test_a_file_added_between_the_passes_fails(tmp_path: Path, schema_file: Path) -> None:
    book(tmp_path)
    fit(tmp_path, schema_file)
    write_csv(tmp_path / "in" / "algo-2" / "part-9.csv", make_rows(50, start=50_000))
    with pytest.raises(pp.InputChanged) as error:
        encode(tmp_path, schema_file, "algo-2")
    message = str(error.value)
    assert message.startswith(
        "the raw files of host algo-2 differ from those its fit pass read: new since the fit "
        "pass: part-9.csv. "
    ), message
    assert not (tmp_path / "out" / "algo-2").exists()


def test_a_file_removed_between_the_passes_fails(tmp_path: Path, schema_file: Path) -> None:
    book(tmp_path)
    fit(tmp_path, schema_file)
    (tmp_path / "in" / "algo-1" / "part-2.csv").unlink()
    with pytest.raises(pp.InputChanged, match=r"gone since the fit pass: part-2\.csv\. "):
        encode(tmp_path, schema_file, "algo-1")
    assert not (tmp_path / "out" / "algo-1").exists()


def test_a_host_whose_every_file_is_gone_says_so(tmp_path: Path, schema_file: Path) -> None:
    book(tmp_path, files=2)
    fit(tmp_path, schema_file)
    (tmp_path / "in" / "algo-2" / "part-1.csv").unlink()
    with pytest.raises(pp.InputChanged, match=r"gone since the fit pass: part-1\.csv\. "):
        encode(tmp_path, schema_file, "algo-2")


def test_files_dealt_to_other_hosts_than_in_the_fit_pass_fail(tmp_path: Path, schema_file) -> None:
    # a file added in front of the others deals every later file to the next host
    book(tmp_path, files=3)
    fit(tmp_path, schema_file)
    (tmp_path / "in" / "algo-1" / "part-2.csv").rename(tmp_path / "in" / "algo-2" / "part-2.csv")
    with pytest.raises(pp.InputChanged) as error:
        encode(tmp_path, schema_file, "algo-2")
    assert "read by algo-1 in the fit pass (the files were dealt to the hosts differently): " in (
        str(error.value)
    )
    with pytest.raises(pp.InputChanged, match=r"gone since the fit pass: part-2\.csv"):
        encode(tmp_path, schema_file, "algo-1")


def test_a_partial_without_digests_is_refused(tmp_path: Path, schema_file: Path) -> None:
    book(tmp_path, files=2)
    fit(tmp_path, schema_file)
    path = tmp_path / "fit" / "fit-algo-1.json"
    data = json.loads(path.read_text())
    data["inputs"] = []
    path.write_text(json.dumps(data))
    with pytest.raises(pp.InputChanged, match=r"no size or digest recorded for part-0\.csv"):
        encode(tmp_path, schema_file, "algo-1")
    data["format"] = "boostline-preprocess-fit/1"
    del data["inputs"]
    path.write_text(json.dumps(data))
    with pytest.raises(stats.StatsError, match="not a fit partial of format"):
        encode(tmp_path, schema_file, "algo-1")


def test_the_script_fails_with_a_boostline_failure_line_naming_the_file(
    tmp_path: Path, schema_file: Path
) -> None:
    parts = book(tmp_path, files=1, rows=2000)
    raw = tmp_path / "in" / "algo-1"
    env = {"PATH": "/usr/bin:/bin", "BOOSTLINE_PII_SALT": "s", "SM_HOSTS": '["algo-1"]'}
    common = [sys.executable, str(SCRIPT), "--input", str(raw), "--schema", str(schema_file)]
    common += ["--block-bytes", str(1 << 16)]
    proc = subprocess.run(
        [*common, "--pass", "fit", "--output-dir", str(tmp_path / "f")],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cells = same_size_change(raw / "part-0.csv", row=1900)
    out = tmp_path / "o"
    proc = subprocess.run(
        [*common, "--pass", "encode", "--fit-input", str(tmp_path / "f" / "fit"),
         "--output-dir", str(out)],
        capture_output=True, text=True, timeout=120,
        env={**env, "BOOSTLINE_OUTPUT_DIR": str(tmp_path / "msg")},
    )  # fmt: skip
    assert proc.returncode == 1
    line = [x for x in proc.stderr.splitlines() if x.startswith("Boostline failure: ")]
    assert line and line[0].startswith(
        "Boostline failure: preprocessing failed: raw file part-0.csv changed after the fit "
        "pass read it"
    ), proc.stderr
    message = (tmp_path / "msg" / "message").read_text()
    for text in (message, proc.stderr, proc.stdout):
        assert_quotes_no_row(text, parts, cells)
    assert files_under(out) == []


# ---------------------------------------------------------------- one process (no --pass)


def test_the_one_process_mode_writes_what_two_passes_write(tmp_path: Path, schema_file) -> None:
    parts = book(tmp_path, files=2)
    for key, rows in parts.items():
        write_csv(tmp_path / "all" / key, rows)
    report = pp.preprocess(
        tmp_path / "all", schema_file, tmp_path / "one", salt="s", block_bytes=1 << 16
    )
    assert report["status"] == "completed" and report["input_files"] == list(parts)
    hosts = ["algo-1"]
    pp.run_fit(
        tmp_path / "all", schema_file, tmp_path / "fit", SMALL, salt="s", hosts=hosts,
        host="algo-1",
    )  # fmt: skip
    pp.run_encode(
        tmp_path / "all", schema_file, tmp_path / "fit", tmp_path / "two", SMALL, salt="s",
        hosts=hosts, host="algo-1",
    )  # fmt: skip
    one, two = files_under(tmp_path / "one"), files_under(tmp_path / "two")
    assert [p.relative_to(tmp_path / "one") for p in one] == [
        p.relative_to(tmp_path / "two") for p in two
    ]
    for a, b in zip(one, two, strict=True):
        if a.name != "preprocess_report.json":  # its seconds differ
            assert a.read_bytes() == b.read_bytes(), a


def test_the_one_process_mode_catches_a_file_changed_between_its_passes(
    tmp_path: Path, schema_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_csv(tmp_path / "all" / "part-0.csv", make_rows(2000))
    real = pp.fit_host

    def fit_then_change(*args, **kwargs):
        partial = real(*args, **kwargs)
        same_size_change(tmp_path / "all" / "part-0.csv", row=1990)
        return partial

    monkeypatch.setattr(pp, "fit_host", fit_then_change)
    with pytest.raises(pp.InputChanged, match=r"raw file part-0\.csv changed after the fit"):
        pp.preprocess(
            tmp_path / "all", schema_file, tmp_path / "one", salt="s", block_bytes=1 << 16
        )
    assert files_under(tmp_path / "one") == []


# ---------------------------------------------------------------- the reader


def test_a_gzip_file_is_hashed_as_stored(tmp_path: Path) -> None:
    text = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(20_000))
    path = tmp_path / "part-0.csv.gz"
    path.write_bytes(gzip.compress(text))
    raw = pp._HashingReader(path)
    chunks = list(pp._line_chunks(path, raw, 1 << 16))
    assert len(chunks) > 1 and b"".join(c for _, c in chunks) == text[4:]
    assert raw.size == path.stat().st_size
    assert (
        raw.digest() == "blake2b:" + hashlib.blake2b(path.read_bytes(), digest_size=32).hexdigest()
    )


def test_a_gzip_book_is_read_and_checked_as_stored(tmp_path: Path, schema_file: Path) -> None:
    rows = make_rows(2000)
    plain = write_csv(tmp_path / "plain" / "part-0.csv", rows)
    path = tmp_path / "in" / "algo-1" / "part-0.csv.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    fit(tmp_path, schema_file, hosts=["algo-1"])
    (recorded,) = stats.read_partials(tmp_path / "fit")[0].inputs
    assert recorded.size == path.stat().st_size  # the compressed bytes
    assert encode(tmp_path, schema_file, "algo-1", hosts=["algo-1"])["rows_read"] == 2000
    same_size_change(plain, row=1500)
    path.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    with pytest.raises(pp.InputChanged, match=r"part-0\.csv\.gz"):  # its size, likely
        encode(tmp_path, schema_file, "algo-1", hosts=["algo-1"])
