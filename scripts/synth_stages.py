#!/usr/bin/env python3
"""Synthesize every stage of a checkout, offline, into OUT/<stage>/*.template.json.

    python scripts/synth_stages.py OUT [--checkout DIR] [--stage NAME ...]

The checkout (default: this repository) must be installed: DIR/.venv with the package
(`make install`) and DIR/node_modules with the pinned CDK CLI (`npm ci`). Its stages are
the ones its own config lists, read with its own Python. A stage whose synth fails gets
OUT/<stage>/FAILED holding the end of the CLI's output; when the stages cannot even be
listed, OUT/FAILED says why. scripts/template_diff.py reports those files instead of
comparing against nothing. Exit status: 0 when every stage was synthesized, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAILED = "FAILED"
TEMPLATE_SUFFIX = ".template.json"
TAIL_LINES = 60
SYNTH_TIMEOUT = 900  # seconds per stage; a synth takes well under a minute
CDK_ENV = {
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "CDK_DISABLE_VERSION_CHECK": "1",
    "CDK_DISABLE_CLI_TELEMETRY": "true",
}
LIST_STAGES = (
    "import json; from boostline.config import load_config; "
    "print(json.dumps(list(load_config().stages)))"
)


class SynthError(Exception):
    pass


def _tail(text: str) -> str:
    lines = text.strip().splitlines()
    return "\n".join(lines[-TAIL_LINES:])


def _run(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command,
            cwd=cwd,
            env={**os.environ, **CDK_ENV},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as error:
        raise SynthError(f"{command[0]} not found ({error.strerror})") from error
    except subprocess.TimeoutExpired as error:
        output = error.output or ""
        if isinstance(output, bytes):
            output = output.decode(errors="replace")
        raise SynthError(
            f"{' '.join(command)} ran past {timeout:.0f} s\n{_tail(output)}"
        ) from error


def list_stages(checkout: Path) -> list[str]:
    python = checkout / ".venv" / "bin" / "python"
    if not python.exists():
        raise SynthError(f"{python} does not exist: install the checkout first (make install)")
    result = _run([str(python), "-c", LIST_STAGES], checkout, timeout=300)
    if result.returncode != 0:
        raise SynthError(f"listing the stages failed:\n{_tail(result.stdout)}")
    try:
        stages = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError) as error:
        raise SynthError(f"listing the stages printed no list:\n{_tail(result.stdout)}") from error
    return [str(stage) for stage in stages]


def synth_stage(checkout: Path, stage: str, out: Path) -> None:
    """OUT/<stage>/*.template.json, or SynthError with the CLI's output."""
    cdk = checkout / "node_modules" / ".bin" / "cdk"
    if not cdk.exists():
        raise SynthError(f"{cdk} does not exist: run `npm ci` in the checkout first")
    with tempfile.TemporaryDirectory(prefix=f"synth-{stage}-") as assembly:
        command = [str(cdk), "synth", "--no-notices", "--quiet", "-c", f"stage={stage}"]
        result = _run([*command, "--output", assembly], checkout, timeout=SYNTH_TIMEOUT)
        if result.returncode != 0:
            raise SynthError(
                f"cdk synth -c stage={stage} exited {result.returncode}:\n{_tail(result.stdout)}"
            )
        templates = sorted(Path(assembly).glob("*" + TEMPLATE_SUFFIX))
        if not templates:
            raise SynthError(f"cdk synth -c stage={stage} wrote no template")
        out.mkdir(parents=True, exist_ok=True)
        for template in templates:
            shutil.copyfile(template, out / template.name)


def _check_out_dir(out: Path, checkout: Path) -> None:
    """OUT is replaced; refuse anything that is not an earlier output of this script."""
    if checkout.resolve().is_relative_to(out.resolve()):
        raise SynthError(f"{out} holds the checkout {checkout}; choose another folder")
    if not out.exists():
        return
    for path in out.iterdir():
        if path.is_file() and path.name == FAILED:
            continue
        if path.is_dir() and all(
            p.is_file() and (p.name == FAILED or p.name.endswith(TEMPLATE_SUFFIX))
            for p in path.iterdir()
        ):
            continue
        raise SynthError(f"{out} holds {path.name}, which this script did not write; not replaced")
    shutil.rmtree(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the folder to write (replaced)")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="default: this repository")
    parser.add_argument("--stage", action="append", help="only these stages (default: all)")
    args = parser.parse_args(argv)
    checkout = args.checkout.resolve()
    try:
        _check_out_dir(args.out, checkout)
    except SynthError as error:
        print(f"synth_stages: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True)
    try:
        stages = args.stage or list_stages(checkout)
    except SynthError as error:
        (args.out / FAILED).write_text(f"{checkout}: {error}\n", encoding="utf-8")
        print(f"synth_stages: {checkout}: {error}", file=sys.stderr)
        return 1
    failed = []
    for stage in stages:
        print(f"synth_stages: stage {stage} of {checkout}", flush=True)
        try:
            synth_stage(checkout, stage, args.out / stage)
        except SynthError as error:
            failed.append(stage)
            (args.out / stage).mkdir(parents=True, exist_ok=True)
            (args.out / stage / FAILED).write_text(f"{error}\n", encoding="utf-8")
            print(f"synth_stages: stage {stage} failed: {error}", file=sys.stderr)
    done = len(stages) - len(failed)
    print(f"synth_stages: {done} of {len(stages)} stage(s) synthesized into {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
