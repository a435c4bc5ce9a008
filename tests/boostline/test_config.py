"""The typed configuration: checks that stop a run before anything is paid for."""

from __future__ import annotations

from pathlib import Path

import pytest

from boostline.cli import main
from boostline.config import DEFAULT_CONFIG, ConfigError, load_config


def _config_text(**replacements: str) -> str:
    text = DEFAULT_CONFIG.read_text().replace(
        "../boostline/data/loan_schema.yaml",
        str(DEFAULT_CONFIG.parent.parent / "boostline/data/loan_schema.yaml"),
    )
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def test_the_shipped_config_gives_every_training_host_a_shard() -> None:
    config = load_config()
    assert config.preprocess.train_shards >= config.training.instance_count


def test_fewer_shards_than_training_hosts_is_refused(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(_config_text(**{"train_shards: 4": "train_shards: 1"}))
    with pytest.raises(ConfigError) as error:
        load_config(bad)
    assert "train_shards (1) is below training.instance_count (2)" in str(error.value)
    assert main(["config", "check", "--config", str(bad)]) == 2
    assert "some training hosts would get no data" in capsys.readouterr().err


def test_preprocess_arguments_carry_the_training_host_count() -> None:
    arguments = load_config().preprocess.arguments("3")
    flag = arguments.index("--training-instance-count")
    assert arguments[flag + 1] == "3"
