"""The training scripts as one reproducible `sourcedir.tar.gz`.

Every SageMaker step runs code from this archive: the processing steps untar it,
training and serving receive it in script mode (`sagemaker_program` plus
`sagemaker_submit_directory`). The archive is rebuilt at every synth; identical
sources give an identical archive (sorted entries, mtime 0, uid/gid 0, fixed
modes, no gzip timestamp or file name), so the CDK asset hash and the templates only
change when a script changes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

ARCHIVE_NAME = "sourcedir.tar.gz"
# What travels: Python modules and the data files they read, in the top directory and in
# sub-packages (directories with an __init__.py). Anything else left there (local job
# outputs, caches, editor files) stays behind.
INCLUDED_SUFFIXES = (".py", ".yaml", ".yml", ".json", ".txt")


def source_files(source_dir: Path) -> list[Path]:
    """The files that go into the archive, relative to source_dir, in archive order."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"source directory {source_dir} does not exist")
    files = []
    pending = [source_dir]
    while pending:
        directory = pending.pop()
        for path in directory.iterdir():
            if path.name.startswith("."):
                continue
            if path.is_dir() and (path / "__init__.py").is_file():
                pending.append(path)
            elif path.is_file() and path.suffix in INCLUDED_SUFFIXES:
                files.append(path.relative_to(source_dir))
    if not files:
        raise FileNotFoundError(f"no source files in {source_dir}")
    return sorted(files, key=lambda p: p.as_posix())


def archive_bytes(source_dir: Path) -> bytes:
    """The gzip-compressed tar of source_dir, byte-identical for identical sources."""
    source_dir = Path(source_dir)
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for relative in source_files(source_dir):
            data = (source_dir / relative).read_bytes()
            info = tarfile.TarInfo(name=relative.as_posix())
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    # mtime=0 and no file name keep the gzip header stable too.
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(tar_buffer.getvalue())
    return out.getvalue()


def build_archive(source_dir: Path, out_dir: Path) -> Path:
    """Write `<out_dir>/sourcedir.tar.gz`; rewrite it only when its content changed."""
    data = archive_bytes(source_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / ARCHIVE_NAME
    if not target.exists() or target.read_bytes() != data:
        target.write_bytes(data)
    return target


def archive_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
