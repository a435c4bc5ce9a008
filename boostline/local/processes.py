"""Run a group of local processes as one job: shared output, shared fate, no orphans.

Used by the local stand-ins for SageMaker training and processing jobs. Each process
gets its own session (so its whole process group can be signalled), its combined
stdout/stderr is read line by line on a thread, and when one process fails the others
get `grace` seconds before they are stopped: a distributed peer would otherwise wait
for the failed one forever.

Each result carries the peak RSS of the process's tree: the largest VmHWM (Linux's
resident high-water mark) of the process and its descendants, sampled as the group is
supervised (every POLL_SECONDS). Not wait4's ru_maxrss: a child's ru_maxrss starts at the
high-water mark of the process that started it, so every job started by a large runner
would report at least the runner's size. Growth in a process's last POLL_SECONDS is
missed, as is a process that lives shorter than that; off Linux the peak is None.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

POLL_SECONDS = 0.05
TERM_WAIT_SECONDS = 3.0
READER_JOIN_SECONDS = 5.0


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path | None = None


@dataclass
class ProcessResult:
    name: str
    returncode: int
    output: str  # combined stdout + stderr, without the "[name] " prefix
    elapsed: float = 0.0  # seconds from the start of the group until this process ended
    timed_out: bool = False
    peak_rss_kb: int | None = None  # the largest VmHWM of the process and its descendants


class _Running:
    """One started process, its output lines and its reader thread."""

    def __init__(self, spec: ProcessSpec, emit: Callable[[str, str], None]) -> None:
        self.spec = spec
        self.lines: list[str] = []
        self.ended_at: float | None = None
        self.peak_rss_kb: int | None = None
        self.proc = subprocess.Popen(
            spec.argv,
            env=spec.env,
            cwd=spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, args=(emit,), daemon=True)
        self.reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self, emit: Callable[[str, str], None]) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            self.lines.append(line)
            emit(self.spec.name, line)
        self.proc.stdout.close()

    def sample_peak(self) -> None:
        """Raise peak_rss_kb to the largest VmHWM in the process's tree now."""
        for pid in _tree(self.pid):
            hwm = _vm_hwm_kb(pid)
            if hwm is not None and (self.peak_rss_kb is None or hwm > self.peak_rss_kb):
                self.peak_rss_kb = hwm

    def poll(self) -> int | None:
        """Return the exit code once the process has ended, after stopping its group."""
        if self.proc.returncode is not None:
            return self.proc.returncode
        if not _has_exited(self.pid):
            return None
        # The leader is a zombie until reaped, so its group id cannot be reused yet:
        # this is the one safe moment to stop whatever it left behind in its group.
        _signal_group(self.pid, signal.SIGKILL)
        return self.proc.wait()

    def signal(self, sig: int) -> None:
        if self.proc.returncode is None:
            _signal_group(self.pid, sig)

    def wait(self) -> int:
        if self.proc.returncode is None:
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        code = self.poll()
        assert code is not None
        return code


def _has_exited(pid: int) -> bool:
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None and info.si_pid == pid


def _vm_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None  # gone, a zombie (no memory left to report), or not Linux


def _tree(pid: int) -> list[int]:
    """The process and its live descendants (through every thread's children list)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            threads = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in threads:
            try:
                with open(f"/proc/{current}/task/{tid}/children", "rb") as children:
                    pending.extend(int(child) for child in children.read().split())
            except (OSError, ValueError):
                continue
    return found


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _make_emitter(echo: Callable[[str], None] | None) -> Callable[[str, str], None]:
    lock = threading.Lock()

    def emit(name: str, line: str) -> None:
        if echo is None:
            return
        with lock:
            try:
                echo(f"[{name}] {line}")
            except Exception:  # the reader must go on draining the pipe, or the child blocks
                traceback.print_exc()

    return emit


def _stop(running: Sequence[_Running], started: float) -> None:
    """SIGTERM every live group, then SIGKILL what is left after a short wait."""
    for run in running:
        run.signal(signal.SIGTERM)
    deadline = time.monotonic() + TERM_WAIT_SECONDS
    while time.monotonic() < deadline and any(run.poll() is None for run in running):
        time.sleep(POLL_SECONDS)
    _kill_all(running, started)


def _kill_all(running: Sequence[_Running], started: float) -> None:
    for run in running:
        run.signal(signal.SIGKILL)
    for run in running:
        run.wait()
        if run.ended_at is None:
            run.ended_at = time.monotonic() - started


def _supervise(
    running: Sequence[_Running], started: float, timeout: float | None, grace: float
) -> bool:
    """Wait for all processes; return True when the timeout stopped them."""
    timeout_at = None if timeout is None else started + timeout
    grace_until: float | None = None
    while True:
        for run in running:
            if run.ended_at is None:
                run.sample_peak()
        now = time.monotonic()
        for run in running:
            if run.ended_at is None and run.poll() is not None:
                run.ended_at = now - started
                if run.proc.returncode != 0 and grace_until is None:
                    grace_until = now + grace
        if all(run.ended_at is not None for run in running):
            return False
        if timeout_at is not None and now >= timeout_at:
            _kill_all(running, started)
            return True
        if grace_until is not None and now >= grace_until:
            _stop(running, started)
            return False
        time.sleep(POLL_SECONDS)


def run_processes(
    specs: Sequence[ProcessSpec],
    *,
    timeout: float | None = None,
    echo: Callable[[str], None] | None = None,
    grace: float = 10.0,
    on_start: Callable[[str, int], None] | None = None,
) -> list[ProcessResult]:
    """Run every spec at once and wait for all of them; results come in spec order.

    A process that exits non-zero gives the others `grace` seconds to finish, then they
    are stopped (SIGTERM, then SIGKILL). After `timeout` seconds every process is killed
    and marked `timed_out`. On KeyboardInterrupt every process group is killed and the
    interrupt re-raised. `on_start(name, pid)` is called as each process starts; the
    pid is also its process group id.
    """
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"process names must be unique, got {names}")
    emit = _make_emitter(echo)
    running: list[_Running] = []
    started = time.monotonic()
    try:
        for spec in specs:
            running.append(_Running(spec, emit))
            if on_start is not None:
                on_start(spec.name, running[-1].pid)
        timed_out = _supervise(running, started, timeout, grace)
    finally:
        _kill_all(running, started)
    for run in running:
        run.reader.join(READER_JOIN_SECONDS)
    return [_result(run, timed_out) for run in running]


def _result(run: _Running, timed_out: bool) -> ProcessResult:
    output = "\n".join(run.lines)
    return ProcessResult(
        name=run.spec.name,
        returncode=run.proc.returncode if run.proc.returncode is not None else -signal.SIGKILL,
        output=output + "\n" if output else "",
        elapsed=run.ended_at or 0.0,
        timed_out=timed_out,
        peak_rss_kb=run.peak_rss_kb,
    )
