"""training_scripts/ runs in the XGBoost 3.0-5 image, on Python 3.10: no 3.11+ standard library.

The image lane imports every module on a real 3.10; these checks catch the usual
slips here already, on the project's own (newer) Python.
"""

from __future__ import annotations

import ast
import glob
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from training_scripts import data_quality

SCRIPTS = Path(data_quality.__file__).resolve().parent
MODULES = sorted(SCRIPTS.glob("*.py"))

# Standard-library names that Python 3.10 does not have (3.11 and 3.12 additions).
NEWER: dict[str, frozenset[str]] = {
    "datetime": frozenset({"UTC"}),
    "typing": frozenset(
        {
            "Self", "Never", "LiteralString", "NotRequired", "Required", "TypeVarTuple",
            "Unpack", "assert_never", "assert_type", "reveal_type", "dataclass_transform",
            "get_overloads", "clear_overloads", "override",
        }
    ),
    "enum": frozenset({"StrEnum", "ReprEnum", "EnumCheck", "FlagBoundary", "verify", "member"}),
    "hashlib": frozenset({"file_digest"}),
    "asyncio": frozenset({"TaskGroup", "timeout", "Runner"}),
    "contextlib": frozenset({"chdir"}),
    "math": frozenset({"cbrt", "exp2"}),
    "operator": frozenset({"call"}),
    "sys": frozenset({"exception"}),
    "logging": frozenset({"getLevelNamesMapping"}),
    "itertools": frozenset({"batched"}),
}  # fmt: skip
NEWER_MODULES = frozenset({"tomllib", "wsgiref.types"})
NEWER_BUILTINS = frozenset({"ExceptionGroup", "BaseExceptionGroup"})


def newer_than_310(source: str) -> list[str]:
    """Where a module uses the standard library of Python 3.11 or later."""
    found = []
    tree = ast.parse(source)
    aliases: dict[str, str] = {}  # local name -> module, for `import datetime as dt`
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in NEWER_MODULES:
                    found.append(f"line {node.lineno}: import {alias.name}")
                aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in NEWER_MODULES:
                found.append(f"line {node.lineno}: from {node.module} import ...")
            for alias in node.names:
                if alias.name in NEWER.get(node.module, ()):
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = aliases.get(node.value.id)
            if module is not None and node.attr in NEWER.get(module, ()):
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in NEWER_BUILTINS:
            found.append(f"line {node.lineno}: {node.id}")
        elif type(node).__name__ == "TryStar":
            found.append(f"line {node.lineno}: except*")
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_note":
            found.append(f"line {node.lineno}: .add_note()")
    return sorted(found, key=lambda where: int(where.split(":")[0].split()[1]))


def test_the_checker_sees_what_310_lacks() -> None:
    source = (
        "import datetime as dt\nfrom datetime import UTC\nimport tomllib\n"
        "from typing import Self\nx = dt.UTC\nraise ExceptionGroup('x', [])\n"
    )
    assert [line.split(":")[0] for line in newer_than_310(source)] == [
        "line 2", "line 3", "line 4", "line 5", "line 6",
    ]  # fmt: skip


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 cannot even parse except*")
def test_the_checker_sees_except_star() -> None:
    source = "try:\n    pass\nexcept* ValueError:\n    pass\n"
    assert newer_than_310(source) == ["line 1: except*"]


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_scripts_use_only_the_310_standard_library(path: Path) -> None:
    assert newer_than_310(path.read_text(encoding="utf-8")) == []


def python310() -> str | None:
    pyenv = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = sorted(glob.glob(f"{pyenv}/versions/3.10.*/bin/python"), reverse=True)
    return candidates[0] if candidates else shutil.which("python3.10")


def test_scripts_compile_on_python_310(tmp_path: Path) -> None:
    """Syntax only (3.10 has no numpy here); the image lane imports them for real."""
    interpreter = python310()
    if interpreter is None:
        pytest.skip("no Python 3.10 interpreter found (pyenv install 3.10); the image lane checks")
    code = (
        "import py_compile, sys\n"
        "for path in sys.argv[1:]:\n"
        "    py_compile.compile(path, cfile=path + 'c', doraise=True)\n"
    )
    copies = []
    for module in MODULES:
        copies.append(tmp_path / module.name)
        copies[-1].write_bytes(module.read_bytes())
    done = subprocess.run(
        [interpreter, "-c", code, *map(str, copies)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-12T02:00:00Z", datetime(2026, 11, 12, 2, tzinfo=timezone.utc)),
        ("2026-11-12T02:00:00", datetime(2026, 11, 12, 2, tzinfo=timezone.utc)),
        ("2026-11-12T02:00:00.5Z", datetime(2026, 11, 12, 2, 0, 0, 500000, timezone.utc)),
        ("2026-11-12T02:00:00.1234567z", datetime(2026, 11, 12, 2, 0, 0, 123456, timezone.utc)),
        (
            "2026-11-12T03:30:00.25+01:30",
            datetime(2026, 11, 12, 2, 0, 0, 250000, timezone.utc),
        ),
    ],
)
def test_iso_times_parse_alike_on_310_and_later(text: str, expected: datetime) -> None:
    parsed = data_quality.parse_utc_time(text)
    assert parsed == expected and parsed.utcoffset() == timedelta(0)
