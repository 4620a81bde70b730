"""Start and stop the study's processes so that none outlives its owner.

Every server (services, Prometheus, exporters) and the load generator is started through
`start()`:
- its output goes to a log file (the run folder keeps it);
- it gets its own process group, so stopping it stops what it spawned;
- the kernel sends it SIGKILL if the Python process that started it dies (PR_SET_PDEATHSIG),
  which covers a killed or restarted Jupyter kernel, where no Python cleanup code runs;
- `before_exec` callbacks run in the child before exec — the local backend uses one to move
  the child into its cgroup, so the program sees its CPU and memory limits from its first
  instruction, as in a container.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def describe_status(status: int | None) -> str:
    """`exit status 2`, `killed by SIGKILL`: how a reader wants an exit told."""
    if status is None:
        return "still running"
    if status < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-status).name}"
        return f"killed by signal {-status}"
    return f"exit status {status}"


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file ('' if there is none yet)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


@dataclass
class ManagedProcess:
    name: str
    popen: subprocess.Popen
    log_path: Path
    argv: Sequence[str] = field(default_factory=tuple)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def log_tail(self, lines: int = 20) -> str:
        return tail(self.log_path, lines)

    def cpu_seconds(self) -> float | None:
        """user + system CPU seconds of the process and its children so far (None once gone)."""
        try:
            times = psutil.Process(self.pid).cpu_times()
        except psutil.Error:
            return None
        return times.user + times.system + times.children_user + times.children_system

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self, grace_s: float = 10.0) -> int:
        """SIGTERM the process group, wait up to `grace_s`, then SIGKILL. Returns exit status."""
        if self.alive():
            self._signal_group(signal.SIGTERM)
            try:
                return self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
        status = self.popen.wait()
        self._signal_group(signal.SIGKILL)  # stragglers the leader left behind
        return status

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)


def start(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    before_exec: Sequence[Callable[[], None]] = (),
) -> ManagedProcess:
    """Start `argv` in a new session with stdout+stderr appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def in_child() -> None:
        _die_with_parent()
        for step in before_exec:
            step()

    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=in_child,
        )
    return ManagedProcess(name=name, popen=popen, log_path=log_path, argv=tuple(argv))
