"""The reproducible source archive."""

from __future__ import annotations

import gzip
import io
import tarfile

from stacks.sourcedir import archive_bytes, build_archive, source_files


def _tree(tmp_path):
    (tmp_path / "pkg").mkdir(parents=True)
    (tmp_path / "train.py").write_text("print('train')\n")
    (tmp_path / "dataset_schema.py").write_text("X = 1\n")
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"junk")
    (tmp_path / ".hidden.py").write_text("")
    (tmp_path / "j1" / "algo-1" / "output").mkdir(parents=True)
    (tmp_path / "j1" / "algo-1" / "output" / "failure").write_text("local job leftovers")
    (tmp_path / "j1" / "algo-1" / "resourceconfig.json").write_text("{}")
    return tmp_path


def test_archive_is_byte_identical_and_normalized(tmp_path):
    root = _tree(tmp_path / "src")
    first = archive_bytes(root)
    for path in root.rglob("*.py"):
        path.touch()  # new mtimes must not matter
    assert archive_bytes(root) == first
    assert first[4:8] == b"\0\0\0\0"  # gzip header mtime
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(first))) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["dataset_schema.py", "pkg/__init__.py", "train.py"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {
        (0, 0, 0, "", "", 0o644)
    }


def test_archive_changes_with_content(tmp_path):
    root = _tree(tmp_path / "src")
    before = archive_bytes(root)
    (root / "train.py").write_text("print('changed')\n")
    assert archive_bytes(root) != before


def test_real_training_scripts_are_included(tmp_path):
    from stacks.pipeline_stack import SOURCE_DIR

    names = {p.as_posix() for p in source_files(SOURCE_DIR)}
    assert {"preprocess.py", "train.py", "dataset_schema.py", "evaluate.py"} <= names
    assert not any("__pycache__" in n or n.startswith("j1/") for n in names)
    path = build_archive(SOURCE_DIR, tmp_path)
    mtime = path.stat().st_mtime_ns
    assert build_archive(SOURCE_DIR, tmp_path) == path
    assert path.stat().st_mtime_ns == mtime  # unchanged content is not rewritten
