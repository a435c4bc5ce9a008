"""The lane is the image's Python, and every training script imports on it."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from image_lane import HERE, SCRIPTS, sourcedir_archive, toolkit_env

MODULES = sorted(p.stem for p in SCRIPTS.glob("*.py") if p.stem != "__init__")
IMPORT_ALL = """
import importlib, json, sys, traceback
errors = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except BaseException:
        errors[name] = traceback.format_exc(limit=3)
print(json.dumps(errors))
"""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_lane_has_the_images_python_and_pins() -> None:
    assert sys.version_info[:2] == (3, 10)
    pins = {}
    for line in (HERE / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[_canonical(name)] = version
    installed = {
        _canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
    }
    assert {name: installed.get(name) for name in pins} == pins
    assert installed["xgboost-cpu"] == "3.0.5" and installed["flask"] == "1.1.1"
    assert "xgboost" not in installed  # one XGBoost only


def test_the_toolkit_carries_the_images_patch() -> None:
    import sagemaker_containers._mapping as mapping  # fails on 3.10 without the patch

    source = Path(mapping.__file__).read_text()
    assert "collections.abc.Mapping" in source
    assert re.search(r"collections\.Mapping", source) is None


def test_the_toolkit_never_lays_out_jobs_in_home(tmp_path: Path) -> None:
    """Without /opt/ml or SAGEMAKER_BASE_DIR it would create ~/sagemaker_local/jobs/..."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run(
        [sys.executable, "-c", "import sagemaker_containers.beta.framework"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert not (tmp_path / "sagemaker_local").exists()
    assert (Path(sys.prefix) / "opt-ml" / "code").is_dir()


@pytest.mark.parametrize("module", MODULES)
def test_every_script_imports_as_a_package_module(module: str) -> None:
    importlib.import_module(f"training_scripts.{module}")


@pytest.fixture(scope="module")
def flat_imports(tmp_path_factory) -> dict[str, str]:
    """Import errors of each module as the image imports it: top-level, from /opt/ml/code."""
    root = tmp_path_factory.mktemp("flat-imports")
    code = root / "code"
    with tarfile.open(sourcedir_archive(root)) as tar:
        tar.extractall(code)
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *MODULES],
        cwd=code,
        env=toolkit_env(root / "opt-ml", {"PATH": "/usr/bin:/bin", "HOME": str(root)}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("module", MODULES)
def test_every_script_imports_as_the_image_imports_it(flat_imports, module: str) -> None:
    assert module not in flat_imports, flat_imports.get(module)
