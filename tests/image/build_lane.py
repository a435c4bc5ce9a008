"""Build the image lane: a Python 3.10 virtual environment with the SageMaker XGBoost
3.0-5 image's packages (tests/image/requirements.txt) and the image's own patch.

    python3 tests/image/build_lane.py [LANE_DIR]     (default: .venv-image)

The lane is built once and kept: LANE_DIR/boostline-image-lane.json records a key over the
pins, the patch, this file and the interpreter, and a later run with the same key does
nothing. A missing Python 3.10 or C compiler stops the build with what to install; the lane
never passes for want of them.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).resolve().with_name("requirements.txt")
DEFAULT_LANE = ROOT / ".venv-image"
MARKER = "boostline-image-lane.json"  # tests/image/conftest.py looks for it in sys.prefix
BOOTSTRAP = ("pip", "setuptools", "wheel")
PYTHON_OVERRIDE_ENV = "BOOSTLINE_PYTHON310"
# The image's Dockerfile patches sagemaker-containers for Python 3.10, where the ABCs left
# `collections`:  sed -i 's/collections\.Mapping/collections.abc.Mapping/g' .../_mapping.py
PATCH_FILE = "sagemaker_containers/_mapping.py"
PATCH_FROM, PATCH_TO = re.compile(r"collections\.Mapping"), "collections.abc.Mapping"
# Imported where neither /opt/ml nor SAGEMAKER_BASE_DIR exists, sagemaker-containers lays out
# a job under ~/sagemaker_local/jobs/<time>/opt/ml. In the image /opt/ml always exists; in the
# lane the default is LANE_DIR/opt-ml (whoever sets SAGEMAKER_BASE_DIR still wins).
BASE_DIR_PTH = "boostline_lane_base_dir.pth"
# What `pip check` may report: the image uninstalls `typing` after sagemaker-containers.
KNOWN_GAPS = {"sagemaker-containers 2.8.6.post2 requires typing, which is not installed."}
INSTALL_TIMEOUT = 1800  # seconds; a cold build downloads and compiles a few packages
MISSING_PYTHON = (
    "no Python 3.10 found (the SageMaker XGBoost 3.0-5 image's Python). Install it, for "
    "example `pyenv install 3.10` or `apt-get install python3.10 python3.10-venv "
    "python3.10-dev`, or point {env} at a python3.10 binary."
)


class LaneError(Exception):
    pass


def _version_of(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.stdout.split()
    if out.returncode != 0 or len(parts) != 2:
        return None
    return int(parts[0]), int(parts[1])


def _candidates() -> list[str]:
    found: list[str] = []
    override = os.environ.get(PYTHON_OVERRIDE_ENV)
    if override:
        return [override]
    if shutil.which("pyenv"):
        out = subprocess.run(
            ["pyenv", "prefix", "3.10"], capture_output=True, text=True, timeout=60, check=False
        )
        for prefix in out.stdout.split(":") if out.returncode == 0 else []:
            found.append(str(Path(prefix.strip()) / "bin" / "python3.10"))
    which = shutil.which("python3.10")
    if which:
        found.append(which)  # a pyenv shim fails unless 3.10 is selected: checked below
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    found += sorted(glob.glob(os.path.join(pyenv_root, "versions", "3.10*", "bin", "python3.10")))
    return found


def find_python310() -> str:
    """The first Python 3.10 interpreter that runs, or LaneError saying what to install."""
    for candidate in _candidates():
        if _version_of(candidate) == (3, 10):
            return candidate
    if os.environ.get(PYTHON_OVERRIDE_ENV):
        raise LaneError(
            f"{PYTHON_OVERRIDE_ENV}={os.environ[PYTHON_OVERRIDE_ENV]} is not a working Python 3.10"
        )
    raise LaneError(MISSING_PYTHON.format(env=PYTHON_OVERRIDE_ENV))


def check_compiler(python: str) -> None:
    """sagemaker-containers, psutil and MarkupSafe compile C extensions at install time."""
    compiler = os.environ.get("CC") or "cc"
    if not shutil.which(compiler.split()[0]):
        raise LaneError(
            f"the image lane compiles C extensions and found no C compiler ({compiler!r}): "
            "install one, for example `apt-get install build-essential`"
        )
    include = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    if not (Path(include) / "Python.h").is_file():
        raise LaneError(
            f"{python} has no C headers ({include}/Python.h): install its development "
            "files, for example `apt-get install python3.10-dev`"
        )


def pins(path: Path = REQUIREMENTS) -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    found = [line for line in lines if line]
    loose = [line for line in found if not re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", line)]
    if loose:
        raise LaneError(f"{path}: every line must pin one version exactly, not {loose}")
    return found


def lane_key(python: str) -> str:
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    digest = hashlib.sha256()
    for part in (REQUIREMENTS.read_bytes(), Path(__file__).read_bytes(), version.encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _run(argv: list[str], **kwargs) -> None:
    print("+ " + " ".join(argv), flush=True)
    subprocess.run(argv, check=True, timeout=INSTALL_TIMEOUT, **kwargs)


def _site_packages(lane_python: Path) -> Path:
    out = subprocess.run(
        [str(lane_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return Path(out.stdout.strip())


def apply_image_patch(site_packages: Path) -> None:
    target = site_packages / PATCH_FILE
    text = target.read_text()
    patched, count = PATCH_FROM.subn(PATCH_TO, text)
    if count == 0 and PATCH_TO not in text:
        raise LaneError(f"{target}: nothing to patch; is this sagemaker-containers 2.8.6.post2?")
    target.write_text(patched)


def set_default_base_dir(site_packages: Path, lane: Path) -> None:
    line = f"import os; os.environ.setdefault('SAGEMAKER_BASE_DIR', {str(lane / 'opt-ml')!r})\n"
    (site_packages / BASE_DIR_PTH).write_text(line)


def verify(lane_python: Path, lane: Path) -> None:
    """The toolkit imports on the lane's Python (it fails on 3.10 without the patch)."""
    probe = (
        "import os, sys, gethostname, flask, gevent, xgboost\n"
        "import sagemaker_containers.beta.framework\n"
        "assert sys.version_info[:2] == (3, 10), sys.version\n"
        "assert xgboost.__version__ == '3.0.5' and flask.__version__ == '1.1.1'\n"
        f"assert os.environ['SAGEMAKER_BASE_DIR'] == {str(lane / 'opt-ml')!r}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SAGEMAKER_BASE_DIR"}
    _run([str(lane_python), "-c", probe], env=env)
    check = subprocess.run(
        [str(lane_python), "-m", "pip", "check"], capture_output=True, text=True, timeout=300
    )
    problems = [line for line in check.stdout.splitlines() if line and line not in KNOWN_GAPS]
    if check.returncode != 0 and (problems or not check.stdout.strip()):
        raise LaneError("pip check: " + ("; ".join(problems) or check.stderr.strip()))


def build(lane: Path, python: str, key: str) -> None:
    if lane.exists():
        shutil.rmtree(lane)
    _run([python, "-m", "venv", str(lane)])
    lane_python = lane / "bin" / "python"
    wanted = pins()
    bootstrap = [p for p in wanted if p.split("==")[0].lower() in BOOTSTRAP]
    pip = [str(lane_python), "-m", "pip", "install", "--quiet", "--no-deps"]
    _run([*pip, *bootstrap])
    # --no-deps: exactly the pinned set, nothing resolved at build time; no build isolation:
    # the sdists (sagemaker-containers, psutil, MarkupSafe, ...) build with the pinned
    # setuptools and wheel.
    _run([*pip, "--no-build-isolation", "-r", str(REQUIREMENTS)])
    site_packages = _site_packages(lane_python)
    apply_image_patch(site_packages)
    set_default_base_dir(site_packages, lane)
    verify(lane_python, lane)
    marker = {"key": key, "python": python, "requirements": REQUIREMENTS.name}
    (lane / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")


def ensure_lane(lane: Path = DEFAULT_LANE) -> Path:
    """Build the lane unless it is current; return its python."""
    python = find_python310()
    key = lane_key(python)
    marker = lane / MARKER
    lane.parent.mkdir(parents=True, exist_ok=True)
    with open(lane.parent / f"{lane.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two `make test` at once build it once
        if marker.is_file() and json.loads(marker.read_text()).get("key") == key:
            print(f"image lane {lane} is up to date ({python})", flush=True)
            return lane / "bin" / "python"
        check_compiler(python)
        started = time.monotonic()
        print(f"building the image lane in {lane} with {python}", flush=True)
        build(lane, python, key)
        print(f"image lane built in {time.monotonic() - started:.0f} s", flush=True)
    return lane / "bin" / "python"


def main(argv: list[str]) -> int:
    lane = Path(argv[0]).absolute() if argv else DEFAULT_LANE
    try:
        ensure_lane(lane)
    except LaneError as exc:
        print(f"image lane: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"image lane: building failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
