"""scripts/aws_identity.py, the check `make diff` and `make deploy` run before the CDK CLI:
against no credentials, an STS that does not answer, and moto's STS."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "aws_identity.py"
MOTO_ACCOUNT = "123456789012"  # the account moto's STS answers for


def no_aws_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment without any AWS credential source (variables, files, metadata)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(tmp_path),
        AWS_CONFIG_FILE=str(tmp_path / "none" / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none" / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.update(extra)
    return env


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run(env: dict[str, str], *args: str) -> Result:
    """The script's main() in this process, under exactly `env` (faster than a subprocess)."""
    spec = importlib.util.spec_from_file_location("aws_identity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    saved = dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.clear()
        os.environ.update(env)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = module.main(list(args))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def sts_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_no_credentials_is_one_line_saying_what_to_set(tmp_path: Path) -> None:
    result = run(no_aws_env(tmp_path), "dev")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: no AWS credentials for stage 'dev' (region ")
    assert "AWS_PROFILE" in result.stderr and len(result.stderr.splitlines()) == 1


def test_an_sts_that_does_not_answer_is_reported_not_waited_for(tmp_path: Path) -> None:
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens
    env = no_aws_env(
        tmp_path,
        AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
        AWS_SECRET_ACCESS_KEY="x",
        AWS_ENDPOINT_URL=closed,
    )
    result = run(env, "dev")
    assert result.returncode == 1
    assert (
        "error: AWS STS did not confirm the credentials (EndpointConnectionError" in result.stderr
    )


def test_an_unknown_stage_is_a_config_error(tmp_path: Path) -> None:
    result = run(no_aws_env(tmp_path), "nope")
    assert result.returncode == 1
    assert "no stage 'nope'; known:" in result.stderr


def test_the_identity_is_printed(tmp_path: Path, sts_url: str) -> None:
    env = no_aws_env(
        tmp_path, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="x", AWS_ENDPOINT_URL=sts_url
    )
    result = run(env, "dev")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("stage dev: arn:aws:")
    assert f"(account {MOTO_ACCOUNT}), region " in result.stdout


def test_credentials_for_another_account_than_the_stage_pins_are_refused(
    tmp_path: Path, sts_url: str
) -> None:
    config = (ROOT / "config" / "boostline.yaml").read_text(encoding="utf-8")
    pinned = tmp_path / "boostline.yaml"
    schema = (ROOT / "boostline" / "data" / "loan_schema.yaml").as_posix()
    assert "dataset_schema: loan_schema.yaml\n" in config
    config = config.replace("dataset_schema: loan_schema.yaml\n", f"dataset_schema: {schema}\n")
    assert "\n  dev:\n" in config
    pinned.write_text(config.replace("\n  dev:\n", '\n  dev:\n    account: "210987654321"\n', 1))
    env = no_aws_env(
        tmp_path, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="x", AWS_ENDPOINT_URL=sts_url
    )
    result = run(env, "dev", "--config", str(pinned))
    assert result.returncode == 1
    assert "stage 'dev' deploys to account 210987654321" in result.stderr
    assert f"credentials are for account {MOTO_ACCOUNT}" in result.stderr
