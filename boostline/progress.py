"""Per-step progress lines with elapsed time, for long-running commands."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    """Prints `[  12.3s] step: message` lines; `step()` times one stage."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"[{self.elapsed():7.1f}s] {message}", file=self.stream, flush=True)

    def detail(self, line: str) -> None:
        """A line of a job's own output, indented under the current step."""
        if not self.quiet:
            print(f"           {line}", file=self.stream, flush=True)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        self.say(f"{name} ...")
        try:
            yield
        except BaseException:
            self.say(f"{name} failed after {time.monotonic() - began:.1f}s")
            raise
        self.say(f"{name} done in {time.monotonic() - began:.1f}s")
