"""What every script leaves on failure: the message file and the `Boostline failure: ` line."""

from __future__ import annotations

from pathlib import Path

import pytest

from training_scripts import (
    data_quality,
    evaluate,
    job_message,
    model_quality,
    monitor_job,
    preprocess,
)


def test_the_failure_line_is_one_line_and_read_back(capsys: pytest.CaptureFixture[str]) -> None:
    job_message.print_failure("first\n  second\tthird " + "x" * 2000)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("Boostline failure: first second third x")
    assert len(err.strip()) == len("Boostline failure: ") + job_message.FAILURE_LINE_LIMIT
    log = f"round 1\n{err}Traceback...\nBoostline failure: the last one\n"
    assert job_message.read_failure_line(log) == "the last one"
    assert job_message.read_failure_line("training\n  Boostline failure: indented\n") is None


def test_a_pyarrow_message_is_cut_to_positions() -> None:
    quoted = "CSV parse error: Expected 3 columns, got 2: 0,jane.doe@example.com"
    assert job_message.positions_only(quoted) == "not readable as CSV (Expected 3 columns, got 2)"
    quoted = "In CSV column #1: Row #2: CSV conversion error to float: invalid value 'jane'"
    assert job_message.positions_only(quoted) == "not readable as CSV (column #1, Row #2)"
    assert job_message.positions_only("jane.doe@example.com") == "not readable as CSV"


@pytest.mark.parametrize(
    ("module", "argv", "prefix"),
    [
        (preprocess, ["--input", "{missing}", "--schema", "{missing}", "--output-dir", "{out}"],
         "preprocessing failed: "),
        (evaluate, ["--model-dir", "{missing}", "--test-dir", "{missing}", "--output-dir",
                    "{out}"], "evaluation failed: "),
        (data_quality, ["baseline", "--data", "{missing}", "--manifest", "{missing}",
                        "--output-dir", "{out}"], "data quality baseline failed: "),
        (model_quality, ["baseline", "--evaluation", "{missing}", "--output-dir", "{out}"],
         "model quality baseline failed: "),
        (monitor_job, ["data-quality", "--model-data", "{missing}", "--baseline-statistics",
                       "{missing}", "--constraints", "{missing}", "--captures", "{missing}",
                       "--endpoint", "e", "--output-dir", "{out}", "--no-metrics"],
         "monitor failed: "),
    ],
)  # fmt: skip
def test_processing_scripts_print_the_failure_line_and_write_the_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    module,
    argv: list[str],
    prefix: str,
) -> None:
    monkeypatch.setenv("BOOSTLINE_OUTPUT_DIR", str(tmp_path / "ml-output"))
    paths = {"missing": str(tmp_path / "missing"), "out": str(tmp_path / "out")}
    assert module.main([arg.format(**paths) for arg in argv]) != 0
    message = (tmp_path / "ml-output" / "message").read_text().strip()
    assert message.startswith(prefix)
    lines = [line for line in capsys.readouterr().err.splitlines() if "failed: " in line]
    assert lines == [f"Boostline failure: {' '.join(message.split())}"]


def test_preprocess_quotes_no_row_of_a_broken_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from boostline.data.generator import SCHEMA_PATH

    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "part.csv").write_text("a,b\n1,2,jane.doe@example.com\n")
    monkeypatch.setenv("BOOSTLINE_OUTPUT_DIR", str(tmp_path / "ml-output"))
    argv = ["--input", str(tmp_path / "raw"), "--schema", str(SCHEMA_PATH)]
    assert preprocess.main([*argv, "--output-dir", str(tmp_path / "out")]) != 0
    message = (tmp_path / "ml-output" / "message").read_text()
    assert "part.csv: line 2: expected 2 columns, got 3; column 3 has no header" in message
    assert "jane" not in message and "jane" not in capsys.readouterr().err
