"""The command line: help everywhere, clear errors before anything runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from boostline.cli import build_parser, main
from boostline.config import DEFAULT_CONFIG


def _leaf_commands() -> list[list[str]]:
    parser = build_parser()
    out = []
    for group, sub in parser._subparsers._group_actions[0].choices.items():  # noqa: SLF001
        inner = [a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction"]
        if inner:
            out.extend([group, name] for name in inner[0].choices)
        else:
            out.append([group])
    return out


@pytest.mark.parametrize("command", _leaf_commands(), ids=" ".join)
def test_every_command_has_help_and_a_workdir(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    assert "--workdir" in capsys.readouterr().out


def test_python_dash_m_works() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "boostline", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and "pipeline" in proc.stdout


def test_bad_config_is_reported_with_file_key_and_reason(tmp_path: Path, capsys) -> None:
    text = DEFAULT_CONFIG.read_text().replace("max_parallel_jobs: 2", "max_parallel_jobs: 0")
    text = text.replace(
        "../boostline/data/loan_schema.yaml",
        str(DEFAULT_CONFIG.parent.parent / "boostline/data/loan_schema.yaml"),
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert main(["config", "check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: tuning.max_parallel_jobs:" in err and "greater than or equal to 1" in err


def test_bad_schema_stops_the_pipeline_before_it_runs(tmp_path: Path, capsys) -> None:
    schema = tmp_path / "schema.yaml"
    schema.write_text("target: {column: y}\nfeatures: {numerical: [a]}\n")
    data = tmp_path / "data.csv"
    data.write_text("a,y\n1,0\n")
    code = main(
        [
            "pipeline",
            "run",
            "--data",
            str(data),
            "--schema",
            str(schema),
            "--workdir",
            str(tmp_path / "wd"),
        ]
    )
    assert code == 2
    assert f"{schema}: target.positive_value: is required" in capsys.readouterr().err
    assert not (tmp_path / "wd" / "runs").exists() or not any((tmp_path / "wd" / "runs").iterdir())


def test_models_commands_on_an_empty_registry(tmp_path: Path, capsys) -> None:
    assert main(["models", "list", "--workdir", str(tmp_path)]) == 0
    assert "no model versions" in capsys.readouterr().out
    assert main(["models", "approve", "3", "--workdir", str(tmp_path)]) == 2
    assert "no version 3" in capsys.readouterr().err


def test_cost_prints_an_estimate(capsys) -> None:
    assert main(["cost", "--stage", "prod"]) == 0
    assert "USD" in capsys.readouterr().out
