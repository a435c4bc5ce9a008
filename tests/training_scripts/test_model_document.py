"""training_scripts/model_document.py: the model directory's JSON documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from training_scripts import model_document


class Refused(ValueError):
    pass


def strict(document: Any) -> dict:
    if not isinstance(document, dict) or "version" not in document:
        raise Refused("no version")
    return document


def test_a_missing_file_is_none_and_a_written_one_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "boostline" / "part.json"
    assert model_document.read(path, strict, Refused) is None
    assert model_document.write(path, {"version": 1, "b": [1.5]}) == path
    assert model_document.read(path, strict, Refused) == {"version": 1, "b": [1.5]}
    assert path.read_text().endswith("\n")


@pytest.mark.parametrize(("text", "message"), [("{", "not JSON"), ("[]", "no version")])
def test_a_file_that_cannot_be_read_raises_the_callers_error_naming_it(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "part.json"
    path.write_text(text)
    with pytest.raises(Refused, match=f"{path}: {message}"):
        model_document.read(path, strict, Refused)
