"""preprocess.py on small hand-made data: validation, PII, split, encoding, manifest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_loans import HEADER, SCHEMA, make_rows, write_csv, write_schema

from training_scripts import preprocess as pp
from training_scripts import preprocess_stats as stats

SCRIPT = Path(pp.__file__)


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    return write_schema(tmp_path)


def run(tmp_path: Path, schema_file: Path, rows: list[list[str]], **kw) -> dict:
    write_csv(tmp_path / "raw" / "part-0.csv", rows)
    return pp.preprocess(tmp_path / "raw", schema_file, tmp_path / "out", salt="s3cret", **kw)


def test_writes_sagemaker_layout(tmp_path: Path, schema_file: Path) -> None:
    report = run(tmp_path, schema_file, make_rows(400), train_shards=3)
    out = tmp_path / "out"
    shards = sorted((out / "train").iterdir())
    assert [p.name for p in shards] == ["train-00000.csv", "train-00001.csv", "train-00002.csv"]
    first = shards[0].read_text().splitlines()[0].split(",")
    assert first[0] in ("0", "1")  # label first, no header
    assert len(first) == 1 + 5
    assert (
        report["split_rows"]["train"]
        + report["split_rows"]["validation"]
        + report["split_rows"]["test"]
        == 400
    )
    manifest = json.loads((out / "manifest" / "feature_manifest.json").read_text())
    assert [c["name"] for c in manifest["columns"]] == [
        "amount",
        "income",
        "term",
        "grade",
        "purpose",
    ]
    assert manifest["columns"][3]["categories"] == ["A", "B", "C", "D"]
    # grade lists its values (closed: another value is rejected here and refused by the
    # endpoint); purpose learns them from the training rows (open: unseen is missing)
    assert [manifest["columns"][i]["closed"] for i in (3, 4)] == [True, False]
    assert manifest["target"]["positive_value"] == "bad"


def _labels_of(out: Path, name: str) -> list[int]:
    return [
        int(line.split(",")[0])
        for p in sorted((out / name).glob(f"{name}*.csv"))
        if "meta" not in p.name
        for line in p.read_text().splitlines()
    ]


def test_split_without_id_is_by_content_hash_and_deterministic(tmp_path: Path) -> None:
    # Without an id column a row's split is decided by a hash of its content, so it no
    # longer depends on where the row sits: the same rows in other files and in another
    # order land in the same splits. Classes are balanced in expectation only.
    schema = tmp_path / "schema.yaml"
    schema.write_text(SCHEMA.replace("id: {column: app_id}\n", ""))
    rows = make_rows(3000)
    write_csv(tmp_path / "raw" / "part-0.csv", rows)
    report = pp.preprocess(tmp_path / "raw", schema, tmp_path / "out", salt="s3cret")
    assert report["split_method"] == "stable, by a hash of each row's content (no id column)"
    rates = {name: np.mean(_labels_of(tmp_path / "out", name)) for name in report["split_rows"]}
    assert max(rates.values()) - min(rates.values()) < 0.06
    assert 0.10 < report["split_rows"]["test"] / 3000 < 0.20
    first = (tmp_path / "out" / "test" / "test.csv").read_bytes()
    pp.preprocess(tmp_path / "raw", schema, tmp_path / "again", salt="s3cret")
    assert (tmp_path / "again" / "test" / "test.csv").read_bytes() == first
    shuffled = [rows[i] for i in np.random.default_rng(1).permutation(len(rows))]
    write_csv(tmp_path / "moved" / "a.csv", shuffled[:1000])
    write_csv(tmp_path / "moved" / "b.csv", shuffled[1000:])
    pp.preprocess(tmp_path / "moved", schema, tmp_path / "moved-out", salt="s3cret")
    for name in ("validation", "test"):
        before = sorted((tmp_path / "out" / name / f"{name}.csv").read_text().splitlines())
        after = sorted((tmp_path / "moved-out" / name / f"{name}.csv").read_text().splitlines())
        assert before == after


def test_split_by_id_keeps_rows_in_their_split_as_data_grows(
    tmp_path: Path, schema_file: Path
) -> None:
    rows = make_rows(3000)
    write_csv(tmp_path / "raw" / "a.csv", rows[:2000])
    first = pp.preprocess(tmp_path / "raw", schema_file, tmp_path / "one", salt="s")
    write_csv(tmp_path / "raw" / "b.csv", rows[2000:])
    second = pp.preprocess(tmp_path / "raw", schema_file, tmp_path / "two", salt="s")
    assert first["split_method"].startswith("stable")

    def ids(out: Path) -> set[str]:
        lines = (out / "test" / "test_meta.csv").read_text().splitlines()[1:]
        return {line.split(",")[0] for line in lines}

    old_test, new_test = ids(tmp_path / "one"), ids(tmp_path / "two")
    assert old_test <= new_test  # every earlier test row is still a test row
    old_ids = {f'"APP-{i:05d}"' for i in range(2000)}
    assert (new_test & old_ids) == old_test  # and no earlier training row became one
    assert 0.10 < second["split_rows"]["test"] / 3000 < 0.20
    rates = second["split_positive_rate"]
    assert max(rates.values()) - min(rates.values()) < 0.06


def test_pii_never_reaches_outputs(tmp_path: Path, schema_file: Path) -> None:
    rows = make_rows(300)
    run(tmp_path, schema_file, rows)
    everything = "\n".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())
    for row in rows[:50]:
        assert row[1] not in everything  # email dropped
        assert row[2] not in everything  # ssn hashed
    assert "s3cret" not in everything
    data = "\n".join(p.read_text() for p in (tmp_path / "out").rglob("*.csv"))
    assert "email" not in data and "ssn" not in data


def test_hashing_needs_a_salt(tmp_path: Path, schema_file: Path) -> None:
    write_csv(tmp_path / "raw" / "a.csv", make_rows(50))
    with pytest.raises(pp.PreprocessError, match="BOOSTLINE_PII_SALT"):
        pp.preprocess(tmp_path / "raw", schema_file, tmp_path / "out", salt=None)


def test_bad_rows_are_reported_with_reasons(tmp_path: Path, schema_file: Path) -> None:
    rows = make_rows(200)
    rows[3][3] = "lots"  # not a number
    rows[4][3] = "5"  # below minimum
    rows[5][5] = "36.5"  # not a whole number
    rows[6][6] = "Z"  # unknown category
    rows[7][9] = "maybe"  # unknown label
    rows[8][4] = "inf"  # not finite
    rows[9][3] = ""  # required missing
    report = run(tmp_path, schema_file, rows, max_rejected_fraction=0.1)
    assert report["rows_rejected"] == 7
    text = (tmp_path / "out" / "report" / "rejected_rows.csv").read_text()
    for reason in (
        "amount: not a number",
        "amount: below minimum 100",
        "term: not a whole number",
        "grade: unknown category",
        "status: unknown label",
        "income: not a finite number",
        "amount: missing",
    ):
        assert reason in text
    assert "part-0.csv:5" in text  # rows[3] is on line 5 (header is line 1)
    assert "example.com" not in text


def test_too_many_rejections_fail_with_clear_message(tmp_path: Path, schema_file: Path) -> None:
    rows = make_rows(100)
    for row in rows[:20]:
        row[3] = "n/a"
    with pytest.raises(pp.PreprocessError, match=r"20 of 100 rows \(20.0%\) were rejected"):
        run(tmp_path, schema_file, rows, max_rejected_fraction=0.05)
    report = json.loads((tmp_path / "out" / "report" / "preprocess_report.json").read_text())
    assert report["status"] == "failed"
    assert not (tmp_path / "out" / "train").exists()


def test_unknown_columns_are_dropped(tmp_path: Path, schema_file: Path) -> None:
    rows = [r + ["555-0100"] for r in make_rows(100)]
    write_csv(tmp_path / "raw" / "a.csv", rows, HEADER + ["phone"])
    report = pp.preprocess(tmp_path / "raw", schema_file, tmp_path / "out", salt="x")
    assert report["dropped_columns"] == ["phone"]
    assert "555-0100" not in "".join(p.read_text() for p in (tmp_path / "out").rglob("*.csv"))


def test_missing_schema_column_is_an_error(tmp_path: Path, schema_file: Path) -> None:
    rows = [r[:-2] + [r[-1]] for r in make_rows(30)]
    write_csv(tmp_path / "raw" / "a.csv", rows, [h for h in HEADER if h != "age_band"])
    report = pp.preprocess(tmp_path / "raw", schema_file, tmp_path / "out", salt="x")
    assert report["status"] == "completed"  # sensitive columns are optional
    rows = [r[:4] + r[5:] for r in make_rows(30)]
    write_csv(tmp_path / "raw2" / "a.csv", rows, [h for h in HEADER if h != "income"])
    with pytest.raises(pp.PreprocessError, match="income"):
        pp.preprocess(tmp_path / "raw2", schema_file, tmp_path / "out2", salt="x")


def test_script_exits_nonzero_with_message(tmp_path: Path, schema_file: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--input",
            str(tmp_path / "nothing"),
            "--schema",
            str(schema_file),
            "--output-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env={"BOOSTLINE_OUTPUT_DIR": str(tmp_path / "o"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr
    assert "does not exist" in (tmp_path / "o" / "message").read_text()


def test_a_row_of_the_wrong_width_is_named_by_file_line_and_column_never_by_value(
    tmp_path: Path, schema_file: Path
) -> None:
    """A name, an email and a national id in a row of the wrong width: the job message,
    stderr and stdout name file, line and column, and quote neither a value nor the row."""
    pii = ["jane.private@example.org", "999-88-7777", "Jane Q. Private"]
    long = make_rows(1)[0]
    long[1], long[2] = pii[0], pii[1]
    long.append(pii[2])  # one field more than the header
    short = [*make_rows(1)[0][:6]]
    short[1], short[2] = pii[0], pii[1]
    raw = tmp_path / "raw" / "part-0.csv"
    for bad, line, column in (
        (long, 12, "column 11 has no header"),
        (short, 12, "column 7 (grade) is missing"),
    ):
        rows = make_rows(60)
        rows[10] = bad  # data row 11 sits on line 12
        write_csv(raw, rows)
        out = tmp_path / f"o-{len(bad)}"
        proc = subprocess.run(
            [
                sys.executable,
                str(SCRIPT),
                "--input",
                str(tmp_path / "raw"),
                "--schema",
                str(schema_file),
                "--output-dir",
                str(tmp_path / "out"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={"BOOSTLINE_OUTPUT_DIR": str(out), "PATH": "/usr/bin:/bin"},
        )
        assert proc.returncode == 1
        message = (out / "message").read_text()
        for text in (message, proc.stderr, proc.stdout):
            assert not [value for value in pii if value in text], text
            assert ",".join(bad) not in text
        assert str(raw) in message and f"line {line}: " in message, message
        assert column in message and f"got {len(bad)}" in message, message
        assert message.strip() in proc.stderr


def test_more_training_hosts_than_shards_stops_before_reading(tmp_path: Path, schema_file) -> None:
    with pytest.raises(pp.PreprocessError, match="3 training instances but 2 training shard"):
        run(tmp_path, schema_file, make_rows(200), train_shards=2, training_instance_count=3)
    assert not (tmp_path / "out" / "train").exists()


def test_too_few_training_rows_for_the_hosts_is_refused(tmp_path: Path, schema_file) -> None:
    # Fewer training rows than shards leaves fewer shard files than hosts.
    with pytest.raises(pp.PreprocessError, match="training rows"):
        run(tmp_path, schema_file, make_rows(30), train_shards=40, training_instance_count=40)


def test_the_host_count_reaches_the_script_from_its_command_line(
    tmp_path: Path, schema_file
) -> None:
    data = write_csv(tmp_path / "raw" / "loans.csv", make_rows(200))
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--input",
            str(data.parent),
            "--schema",
            str(schema_file),
            "--output-dir",
            str(tmp_path / "out"),
            "--train-shards",
            "2",
            "--training-instance-count",
            "4",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "BOOSTLINE_OUTPUT_DIR": str(tmp_path / "msg")},
    )
    assert proc.returncode == 1
    assert "4 training instances but 2 training shard(s)" in proc.stderr


def test_a_long_free_text_field_is_read(tmp_path: Path, schema_file) -> None:
    # A 200 kB field used to fail with pyarrow's "straddling object" error.
    rows = make_rows(200)
    header = [*HEADER, "notes"]
    rows = [[*r, ("x" * 200_000 if i == 3 else "short")] for i, r in enumerate(rows)]
    write_csv(tmp_path / "raw" / "part-0.csv", rows, header=header)
    report = pp.preprocess(tmp_path / "raw", schema_file, tmp_path / "out", salt="s")
    assert report["rows_read"] == 200


def test_a_repeated_header_name_is_named_by_file_line_and_column(
    tmp_path: Path, schema_file
) -> None:
    header = [*HEADER[:3], "amount", *HEADER[3:]]
    rows = [[*r[:3], "1", *r[3:]] for r in make_rows(50)]
    path = write_csv(tmp_path / "raw" / "part-0.csv", rows, header=header)
    with pytest.raises(pp.PreprocessError) as error:
        pp.preprocess(tmp_path / "raw", schema_file, tmp_path / "out", salt="s")
    assert str(error.value) == (f"{path}: line 1: column 5 repeats the name 'amount' of column 4")


# ---------------------------------------------------------------- streaming, two passes


def _outputs(out: Path) -> dict[str, list[str]]:
    """Every output's lines, pooled over hosts' files and sorted (order is per host)."""

    def lines(pattern: str) -> list[str]:
        found = []
        for path in sorted(out.glob(pattern)):
            text = path.read_text().splitlines()
            found.extend(text[1:] if path.name.startswith(("test_meta", "rejected")) else text)
        return sorted(found)

    return {
        "train": lines("train/train-*.csv"),
        "validation": lines("validation/validation*.csv"),
        "test": lines("test/test.csv") + lines("test/test-*.csv"),
        "test_meta": lines("test/test_meta*.csv"),
        "rejected": lines("report/rejected_rows*.csv"),
    }


def _book(tmp_path: Path, files: int = 3, rows: int = 1500) -> list[list[list[str]]]:
    data = make_rows(rows)
    data[7][3] = "lots"
    data[rows // 2][6] = "Z"
    data[rows - 100][9] = "maybe"
    parts = [data[i::files] for i in range(files)]
    return parts


def _two_host_run(tmp_path: Path, schema_file: Path, parts, **kw) -> list[dict]:
    hosts = ["algo-1", "algo-2"]
    settings = pp.Settings(**kw)
    for i, rows in enumerate(parts):  # ShardedByS3Key: sorted object i to host i % N
        write_csv(tmp_path / hosts[i % 2] / f"part-{i}.csv", rows)
    for host in hosts:
        pp.run_fit(
            tmp_path / host, schema_file, tmp_path / "fit", settings, salt="s", hosts=hosts,
            host=host,
        )  # fmt: skip
    return [
        pp.run_encode(
            tmp_path / host,
            schema_file,
            tmp_path / "fit",
            tmp_path / "out",
            settings,
            salt="s",
            hosts=hosts,
            host=host,
        )  # fmt: skip
        for host in hosts
    ]


def test_two_hosts_write_what_one_process_writes(tmp_path: Path, schema_file: Path) -> None:
    parts = _book(tmp_path)
    for i, rows in enumerate(parts):
        write_csv(tmp_path / "all" / f"part-{i}.csv", rows)
    single = pp.preprocess(tmp_path / "all", schema_file, tmp_path / "one", salt="s")
    reports = _two_host_run(tmp_path, schema_file, parts)
    out = tmp_path / "out"
    fits = sorted(p.name for p in (tmp_path / "fit").iterdir())
    assert fits == ["fit-algo-1.json", "fit-algo-2.json"]
    assert sorted(p.name for p in (out / "validation").iterdir()) == [
        "validation-algo-1.csv",
        "validation-algo-2.csv",
    ]
    assert {p.name for p in (out / "train").iterdir()} == {
        f"train-algo-{h}-0000{k}.csv" for h in (1, 2) for k in range(4)
    }
    assert _outputs(out) == _outputs(tmp_path / "one")
    manifest = (out / "manifest" / "feature_manifest.json").read_text()
    assert manifest == (tmp_path / "one" / "manifest" / "feature_manifest.json").read_text()
    merged = json.loads((out / "report" / "preprocess_report.json").read_text())
    for key in ("rows_read", "rows_rejected", "rejection_reasons", "split_rows", "label_counts"):
        assert merged[key] == single[key] == reports[0][key] == reports[1][key], key
    assert merged["hosts"] == ["algo-1", "algo-2"] and merged["train_shards"] == 8
    assert single["rows_rejected"] == 3
    # test_meta-<host> row i describes test-<host> row i
    for host in ("algo-1", "algo-2"):
        tests = (out / "test" / f"test-{host}.csv").read_text().splitlines()
        meta = (out / "test" / f"test_meta-{host}.csv").read_text().splitlines()
        assert len(meta) == len(tests) + 1


def test_files_of_one_name_in_two_folders_are_both_read(tmp_path: Path, schema_file) -> None:
    # new data lands under the raw prefix in folders of its own, with the same file names
    rows = make_rows(600)
    write_csv(tmp_path / "raw" / "2024" / "loans-00000.csv", rows[:300])
    write_csv(tmp_path / "raw" / "2025" / "loans-00000.csv", rows[300:])
    report = pp.preprocess(tmp_path / "raw", schema_file, tmp_path / "out", salt="s")
    assert report["rows_read"] == 600
    assert report["input_files"] == ["2024/loans-00000.csv", "2025/loans-00000.csv"]


def test_the_merge_is_the_same_whatever_the_order(tmp_path: Path, schema_file: Path) -> None:
    _two_host_run(tmp_path, schema_file, _book(tmp_path))
    partials = stats.read_partials(tmp_path / "fit")
    forward, backward = stats.merge(partials), stats.merge(partials[::-1])
    assert forward == backward
    assert forward.hosts == ["algo-1", "algo-2"]
    assert sum(forward.categories["purpose"].values()) == sum(forward.split_labels["train"])


def test_fit_partials_hold_no_pii(tmp_path: Path, schema_file: Path) -> None:
    parts = _book(tmp_path)
    _two_host_run(tmp_path, schema_file, parts)
    text = "".join(p.read_text() for p in (tmp_path / "fit").iterdir())
    for rows in parts:
        for row in rows[:30]:
            assert row[1] not in text and row[2] not in text


def test_a_host_without_a_raw_file_is_refused(tmp_path: Path, schema_file: Path) -> None:
    write_csv(tmp_path / "algo-1" / "part-0.csv", make_rows(100))
    (tmp_path / "algo-2").mkdir()
    hosts = ["algo-1", "algo-2"]
    with pytest.raises(pp.PreprocessError, match="host algo-2 of 2 got no raw CSV file"):
        pp.run_fit(
            tmp_path / "algo-2", schema_file, tmp_path / "fit", pp.Settings(), salt="s",
            hosts=hosts, host="algo-2",
        )  # fmt: skip
    assert not (tmp_path / "fit").exists()


def test_encode_refuses_partials_of_another_layout_or_settings(
    tmp_path: Path, schema_file: Path
) -> None:
    _two_host_run(tmp_path, schema_file, _book(tmp_path))
    fit, settings = tmp_path / "fit", pp.Settings()
    with pytest.raises(pp.PreprocessError, match="same instance count"):
        pp.run_encode(
            tmp_path / "algo-1", schema_file, fit, tmp_path / "o1", settings, salt="s",
            hosts=["algo-1", "algo-2", "algo-3"], host="algo-1",
        )  # fmt: skip
    with pytest.raises(pp.PreprocessError, match="its fit pass read"):
        pp.run_encode(
            tmp_path / "algo-2", schema_file, fit, tmp_path / "o2", settings, salt="s",
            hosts=["algo-1", "algo-2"], host="algo-1",
        )  # fmt: skip
    with pytest.raises(pp.PreprocessError, match="another test_fraction"):
        pp.run_encode(
            tmp_path / "algo-1", schema_file, fit, tmp_path / "o3", pp.Settings(test_fraction=0.2),
            salt="s", hosts=["algo-1", "algo-2"], host="algo-1",
        )  # fmt: skip
    for name in ("o1", "o2", "o3"):
        assert not (tmp_path / name).exists()


def test_a_hashed_id_needs_the_same_salt_in_both_passes(tmp_path: Path) -> None:
    schema = tmp_path / "schema.yaml"
    schema.write_text(SCHEMA.replace("id: {column: app_id}", "id: {column: ssn}"))
    write_csv(tmp_path / "algo-1" / "part-0.csv", make_rows(300))
    hosts, settings = ["algo-1"], pp.Settings()
    pp.run_fit(
        tmp_path / "algo-1", schema, tmp_path / "fit", settings, salt="s4lt-0ne", hosts=hosts,
        host="algo-1",
    )  # fmt: skip
    assert "s4lt-0ne" not in (tmp_path / "fit" / "fit-algo-1.json").read_text()
    with pytest.raises(pp.PreprocessError, match="another salt"):
        pp.run_encode(
            tmp_path / "algo-1", schema, tmp_path / "fit", tmp_path / "out", settings,
            salt="two", hosts=hosts, host="algo-1",
        )  # fmt: skip
    report = pp.run_encode(
        tmp_path / "algo-1", schema, tmp_path / "fit", tmp_path / "out", settings,
        salt="s4lt-0ne", hosts=hosts, host="algo-1",
    )  # fmt: skip
    assert report["split_method"].startswith("stable, by a hash of ssn")


def test_too_many_rejections_over_two_hosts_fail_every_host(
    tmp_path: Path, schema_file: Path
) -> None:
    parts = _book(tmp_path, files=2, rows=400)
    for row in parts[1][:40]:
        row[3] = "n/a"  # 40 of 400 rows, all on algo-2
    hosts = ["algo-1", "algo-2"]
    settings = pp.Settings()
    for i, rows in enumerate(parts):
        write_csv(tmp_path / hosts[i] / f"part-{i}.csv", rows)
    for host in hosts:
        pp.run_fit(
            tmp_path / host, schema_file, tmp_path / "fit", settings, salt="s", hosts=hosts,
            host=host,
        )  # fmt: skip
    for host in hosts:
        with pytest.raises(pp.PreprocessError, match=r"42 of 400 rows \(10.5%\) were rejected"):
            pp.run_encode(
                tmp_path / host, schema_file, tmp_path / "fit", tmp_path / "out", settings,
                salt="s", hosts=hosts, host=host,
            )  # fmt: skip
    out = tmp_path / "out"
    report = json.loads((out / "report" / "preprocess_report.json").read_text())
    assert report["status"] == "failed" and report["hosts"] == hosts
    assert not (out / "train").exists() and not (out / "manifest").exists()
    shown = (out / "report" / "rejected_rows-algo-2.csv").read_text()
    assert shown.count("amount: missing") == 40  # "n/a" reads as a missing value


def test_batches_change_nothing_and_keep_line_numbers(
    tmp_path: Path, schema_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = make_rows(3000)
    rows[2500][3] = "lots"  # data row 2501, on line 2502
    write_csv(tmp_path / "raw" / "part-0.csv", rows)
    whole = pp.preprocess(tmp_path / "raw", schema_file, tmp_path / "whole", salt="s")
    lines = []
    real = pp.read_batches

    def counting(files: list[Path], block_bytes: int, check=None):
        for batch in real(files, block_bytes, check):
            lines.append(batch.first_line)
            yield batch

    monkeypatch.setattr(pp, "read_batches", counting)
    small = pp.preprocess(
        tmp_path / "raw", schema_file, tmp_path / "small", salt="s", block_bytes=1 << 16
    )
    assert len(lines) >= 6 and lines[:2] == [2, lines[1]] and lines[1] > 2  # many batches
    for path in sorted((tmp_path / "whole").rglob("*.csv")):
        twin = tmp_path / "small" / path.relative_to(tmp_path / "whole")
        assert path.read_bytes() == twin.read_bytes(), path
    assert small["split_rows"] == whole["split_rows"]
    assert "part-0.csv:2502" in (tmp_path / "small" / "report" / "rejected_rows.csv").read_text()


def test_a_row_longer_than_a_batch_is_read(tmp_path: Path, schema_file: Path) -> None:
    rows = make_rows(500)
    header = [*HEADER, "notes"]
    rows = [[*r, ("x" * 300_000 if i == 3 else "short")] for i, r in enumerate(rows)]
    rows[400][3] = "lots"  # data row 401, on line 402
    write_csv(tmp_path / "raw" / "part-0.csv", rows, header=header)
    report = pp.preprocess(
        tmp_path / "raw", schema_file, tmp_path / "out", salt="s", block_bytes=1 << 16
    )
    assert report["rows_read"] == 500 and report["rows_rejected"] == 1
    assert "part-0.csv:402" in (tmp_path / "out" / "report" / "rejected_rows.csv").read_text()


def test_more_than_one_instance_without_a_pass_is_refused(tmp_path: Path, schema_file) -> None:
    write_csv(tmp_path / "raw" / "a.csv", make_rows(100))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--input", str(tmp_path / "raw"), "--schema",
         str(schema_file), "--output-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "BOOSTLINE_OUTPUT_DIR": str(tmp_path / "msg"),
             "BOOSTLINE_PII_SALT": "s", "SM_HOSTS": '["algo-1", "algo-2"]',
             "SM_CURRENT_HOST": "algo-2"},
    )  # fmt: skip
    assert proc.returncode == 1
    assert "run --pass fit, then --pass encode" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_the_training_host_check_counts_every_preprocessing_hosts_shards() -> None:
    settings = pp.Settings(train_shards=2, training_instance_count=3)
    settings.check(hosts=2)  # 2 hosts x 2 shards: 4 files for 3 training hosts
    with pytest.raises(pp.PreprocessError, match="3 training instances but 2 training shard"):
        settings.check(hosts=1)
