"""What only a Boostline checkout has, and a clear refusal where it is missing.

An installed boostline (the `boostline` and `training_scripts` packages, with the embedded
default config and schema) generates data, checks configs, prices runs, lists, serves and
scores models, and runs pipelines from a synthesized cloud assembly (`--assembly DIR`).
Synthesizing a stage needs the CDK app (app.py, stacks/), and the commands that run the
Lambda functions' own code need lambda/: those live only in a checkout of the repository.
"""

from __future__ import annotations

from pathlib import Path

from boostline.config import REPO_ROOT

CDK_APP = ("app.py", "stacks")
FUNCTIONS = ("lambda",)


class CheckoutRequired(FileNotFoundError):
    """A command needs part of the repository that an installed package does not carry."""


def require(what: str, parts: tuple[str, ...], hint: str = "", root: Path = REPO_ROOT) -> Path:
    """`root` if it holds every one of `parts`; else CheckoutRequired saying what to do."""
    missing = [part for part in parts if not (root / part).exists()]
    if missing:
        raise CheckoutRequired(
            f"{what} needs the Boostline repository's {', '.join(missing)}, which an installed "
            f"package does not carry ({root} has none): run it from a checkout "
            f"(git clone, then `make demo`){hint}"
        )
    return root
