"""The serving stack's protocol: what every backend exposes, and the records it leaves behind.

Notebooks and helpers code against `Stack` (started by `helpers.serving.stack.start_stack`) and
never branch on the backend. Two backends implement it:
- `local` (the default, `helpers.serving.local`): each service a process on 127.0.0.1 in its
  own cgroup limited to 0.5 CPU / 128 MiB, joined *before* exec as in a container; the real
  Prometheus binary scrapes the services and `helpers.serving.local.exporter` (cAdvisor's
  names); k6 is a process.
- `docker` (`helpers.serving.docker`): docker-compose.yaml, read back through the SDK.
This module imports neither: they import it.

Everything a run's stack produces lands in its run folder:
    run_dir/stack/stack.json        endpoints, pids, limits read back, versions, buckets
    run_dir/stack/manifest.json     the manifest of the model the services served
    run_dir/stack/events.json       services that exited while the stack ran (never expected)
    run_dir/stack/logs/<name>.log   each process's (container's) output
    run_dir/prometheus/data/        the TSDB (reopened by helpers.prometheus.tsdb)
The readers of those records live here too (`served_manifest`, `feature_ranges`,
`limits_of`, `read_exits`), so every room reads a run's stack the same way.

A service that exits while the stack runs — crashed, OOM-killed, killed by a signal — is
recorded at once (`failures()`, events.json) with the time and how it ended: the analysis marks
its figures after that moment as not measured, and `make study` exits non-zero.

Teardown is guaranteed on every path: `stop()` is idempotent and runs from the context
manager, on any exception during start-up (KeyboardInterrupt included), and at interpreter
exit (atexit); `helpers.serving.teardown` runs every step even when one fails. If the kernel
itself is killed, PR_SET_PDEATHSIG (helpers.serving.process) kills the children, and the next
start removes what they left.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from helpers import files
from helpers.serving.instances import Instance

EVENTS_NAME = "events.json"
SERVICE_READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Limits:
    """A service's limits as the backend reports them (read back, not requested).

    None means "no limit". `enforced` is False when the backend could not apply limits at all
    (e.g. cgroups not writable): the numbers of such a run are not the study's budget.
    """

    cpu_cores: float | None
    memory_bytes: int | None
    enforced: bool


@dataclass(frozen=True)
class ServiceExit:
    """A service that stopped while its stack was running: when, how, and its last words."""

    service: str
    at: float  # unix seconds
    how: str  # "killed by SIGKILL", "exit status 1"
    oom_kills: int | None  # OOM kills counted in its cgroup/container by then (None: unknown)
    log_tail: str

    def sentence(self) -> str:
        oom = f", {self.oom_kills} OOM kill(s) counted" if self.oom_kills else ""
        stamp = time.strftime("%H:%M:%S", time.localtime(self.at))
        return f"{self.service} stopped at {stamp} ({self.how}{oom})"


@dataclass(frozen=True)
class Usage:
    """One reading of an instance's counters, straight from its cgroup (container): CPU,
    CFS periods, memory as cAdvisor defines it, OOM kills. Windows of load read it before and
    after, so a window's cost is exact, not a scrape a second apart."""

    cpu_usage_seconds: float
    cfs_periods: int
    cfs_throttled_periods: int
    memory_working_set_bytes: int
    oom_kills: int


class LoadGenerator(Protocol):
    """A running k6, wherever the backend runs it (a process or a container)."""

    name: str
    log_path: Path

    def alive(self) -> bool: ...
    def stop(self, grace_s: float = 10.0) -> int: ...
    def log_tail(self, lines: int = 20) -> str: ...
    def cpu_seconds(self) -> float | None: ...


class Stack(Protocol):
    """What every backend exposes once its stack is up; `start_stack` returns one.

    Use it as a context manager (or call `stop()`): stop is idempotent and also registered
    with atexit, so a notebook that forgets it leaves nothing running.
    """

    backend: str
    run_dir: Path
    run_id: str
    service_urls: dict[str, str]  # name -> base URL for clients on this host
    load_target_urls: dict[str, str]  # name -> base URL as the load generator sees it
    prometheus_url: str  # query API, e.g. http://127.0.0.1:9090
    remote_write_url: str  # Prometheus remote-write endpoint for k6
    instances: dict[str, Instance]  # name -> what runs under it (helpers.serving.instances)
    limits: dict[str, Limits]
    limits_enforced: bool
    limits_note: str  # why limits are (not) enforced, in words
    machine: dict[str, Any]  # helpers.machine.describe() when the stack started

    def start_load_generator(
        self, args: list[str], env: dict[str, str], log_path: Path
    ) -> LoadGenerator:
        """Run `k6 <args>` where it can reach `load_target_urls`; stopped with the stack."""
        ...

    def failures(self) -> list[ServiceExit]:
        """Services — and the parts that watch them: Prometheus, the exporter, the collector —
        that exited since the stack came up, in order (empty: all still run)."""
        ...

    def usage(self, name: str) -> Usage:
        """The instance's counters now (its cgroup or container)."""
        ...

    def restart(self, name: str) -> float:
        """Stop the instance and start it again, the same way and under the same limits;
        returns when the new process was spawned (unix seconds) — not when it is ready."""
        ...

    def stop(self) -> None: ...

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_id_of(run_dir: Path) -> str:
    """The run folder's name, safe as a cgroup name and unique to its path (both backends tag a
    run with it): two runs' `capacity/` sub-folders must never share a cgroup."""
    path = Path(run_dir).resolve()
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", path.name).strip(".") or "run"
    return f"{name}-{hashlib.sha256(str(path).encode()).hexdigest()[:6]}"


def gomaxprocs_from_log(text: str) -> int | None:
    """GOMAXPROCS as the Go service logs it at start (slog text or JSON), or None."""
    match = re.search(r"gomaxprocs\W{1,4}(\d+)", text, flags=re.IGNORECASE)
    return int(match.group(1)) if match else None


def freeze_manifest(artifacts_dir: Path, stack_dir: Path) -> Path:
    """Copy the manifest the services are about to serve into the run folder: the analysis
    reads the model's identity from there, never from artifacts/ (retrained since, maybe)."""
    stack_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(Path(artifacts_dir) / "manifest.json", stack_dir / "manifest.json"))


def record_header(stack: Stack) -> dict[str, Any]:
    """The keys every backend's stack.json starts with (each adds its own after them)."""
    return {
        "backend": stack.backend,
        "run_id": stack.run_id,
        "run_dir": str(stack.run_dir),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "limits_enforced": stack.limits_enforced,
        "limits_note": stack.limits_note,
    }


class ExitLog:
    """Services that exited while the stack ran, kept in memory and in stack/events.json.

    Backends call `record()` from their watcher threads the moment they see an exit; the file
    is rewritten whole each time, so a reader (notebook 05, the study driver) sees every exit
    even if the kernel is killed right after.
    """

    def __init__(self, stack_dir: Path) -> None:
        self.path = Path(stack_dir) / EVENTS_NAME
        self.path.unlink(missing_ok=True)  # the record is this stack's, like stack.json
        self._exits: list[ServiceExit] = []
        self._lock = threading.Lock()

    def record(self, event: ServiceExit) -> None:
        with self._lock:
            self._exits.append(event)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            files.write_json(self.path, {"service_exits": [asdict(e) for e in self._exits]})
        print(f"!! {event.sentence()}", flush=True)

    def all(self) -> list[ServiceExit]:
        with self._lock:
            return list(self._exits)


def failure_report(exits: list[ServiceExit]) -> str:
    """The exits in words with each service's last log lines ('' when there were none)."""
    lines = []
    for event in exits:
        lines.append(f"{event.sentence()}; its last log lines:")
        lines += [f"    {line}" for line in event.log_tail.splitlines()]
    return "\n".join(lines)


def read_exits(run_dir: Path, nested: bool = False) -> list[ServiceExit]:
    """The exits a run's stack recorded (empty when none, or no stack ran); with `nested`,
    also those of every stack started in the run folder's sub-folders (notebooks 06–09 start
    stacks of their own), in the order they happened. A record that cannot be read — cut
    short by a crash — is itself reported, never a crash of the reader."""
    root = Path(run_dir)
    found = (
        sorted(root.glob(f"**/stack/{EVENTS_NAME}")) if nested else [root / "stack" / EVENTS_NAME]
    )
    exits = []
    for path in found:
        if not path.exists():
            continue
        try:
            raw = json.loads(path.read_text())["service_exits"]
            exits += [ServiceExit(**event) for event in raw]
        except (ValueError, KeyError, TypeError) as error:
            exits.append(ServiceExit(str(path.relative_to(root)), path.stat().st_mtime,
                                     f"an unreadable exit record ({error})", None, ""))  # fmt: skip
    return sorted(exits, key=lambda e: e.at)


def served_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest the stack froze when it started (the model the services served)."""
    path = Path(run_dir) / "stack" / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: start the stack for this run folder first")
    return json.loads(path.read_text())


def feature_ranges(run_dir: Path) -> dict[str, Any]:
    """The training ranges of the served model's features: what every generator draws from."""
    return served_manifest(run_dir)["feature_ranges"]


def limits_of(record: Mapping[str, Any]) -> dict[str, Limits]:
    """Each service's limits as a stack.json record holds them ({} when no stack ran)."""
    return {
        name: Limits(**service["limits"])
        for name, service in record.get("services", {}).items()
        if service.get("limits")
    }


def largest_limits(limits: Mapping[str, Limits]) -> Limits:
    """The highest CPU and memory limit over the services (None where none is set), enforced
    only when every service's is: the budget a plot draws its quota lines at."""
    cpu = [v.cpu_cores for v in limits.values() if v.cpu_cores]
    memory = [v.memory_bytes for v in limits.values() if v.memory_bytes]
    enforced = bool(limits) and all(v.enforced for v in limits.values())
    return Limits(max(cpu, default=None), max(memory, default=None), enforced)
