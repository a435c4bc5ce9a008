"""Pieces the image lane's tests share: the sourcedir archive, one instance's Python
environment, the toolkit's environment variables, and a server process with bounded waits.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCRIPTS = ROOT / "training_scripts"
HOST = "127.0.0.1"
# The image's environment (its Dockerfile) sets these for every process.
IMAGE_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}


def _sourcedir_module() -> ModuleType:
    # The `stacks` package imports the CDK, which the lane does not have: load the one
    # module by path.
    name = "boostline_lane_sourcedir"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "stacks" / "sourcedir.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def sourcedir_archive(out_dir: Path) -> Path:
    """training_scripts/ as sourcedir.tar.gz, built exactly as the pipeline ships it."""
    return _sourcedir_module().build_archive(SCRIPTS, out_dir)


def image_python(where: Path, modules: Sequence[Path] = ()) -> Path:
    """A Python environment of its own on the lane's packages, as one instance's container.

    The toolkit pip-installs the sourcedir into the Python it runs on; on SageMaker each
    instance has its own. This is a venv without packages whose site-packages reads the
    lane's (so pip, the toolkit and xgboost are there) and receives what pip installs,
    plus `modules` copied in, as the image installs its own framework package.
    """
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120
    )
    python = where / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    lane_site = sysconfig.get_paths()["purelib"]
    # addsitedir, not a bare path: the lane's own .pth files must run too.
    Path(site, "boostline_lane.pth").write_text(f"import site; site.addsitedir({lane_site!r})\n")
    for module in modules:
        shutil.copy(module, Path(site) / Path(module).name)
    return python


def toolkit_env(base_dir: Path, environ: Mapping[str, str], **extra: str) -> dict[str, str]:
    """The environment of a process the image starts, with `base_dir` as its /opt/ml.

    The SM_* variables are the toolkit's to derive (from /opt/ml/input/config), so none
    are passed in. pip gets no index and no configuration: the image's install of the
    sourcedir must work offline (a requirements.txt there would fail it, as under network
    isolation).
    """
    env = {
        k: v
        for k, v in environ.items()
        if not k.startswith(("SM_", "PIP_", "SAGEMAKER_")) and k != "PYTHONPATH"
    }
    env.update(IMAGE_ENV)
    env.update(
        {
            "SAGEMAKER_BASE_DIR": str(base_dir),
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_NO_INDEX": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
    )
    env.update(extra)
    return env


class Server:
    """A server process in its own session, logging to a file; `stop` always ends it."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=log.parent,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            answer = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, answer
        finally:
            connection.close()

    def wait_ready(self, timeout: float) -> None:
        """Until GET /ping answers 200; fails early if the process ends."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if self.request("GET", "/ping", timeout=2.0)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"no answer on /ping within {timeout:g} s:\n{self.log_tail()}")

    def stop(self, grace: float = 10.0) -> None:
        """SIGQUIT (gunicorn's quick shutdown), then SIGKILL to the whole group."""
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGQUIT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=grace)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # workers left behind, if any
            self.proc.wait(timeout=grace)
        finally:
            self._log_file.close()
