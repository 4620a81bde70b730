"""What the docker backend reads from containers: limits, cgroups, deaths, and k6 as a container.

- `limits_from_inspect`: the limits the engine applied (`docker inspect`), never the requested.
- `ExitWatcher`: the engine's event stream (`die`, `oom`) of the project's containers, read in a
  thread, so a service that dies or is OOM-killed while the stack runs is known at once.
- `K6Container`: k6 in a container, as the `LoadGenerator` the load test drives.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from helpers import net
from helpers.serving import process
from helpers.serving.docker.compose import PROJECT_LABEL, SERVICE_LABEL
from helpers.serving.protocol import ExitLog, Limits, ServiceExit

RUNNING = ("created", "running", "restarting")


def limits_from_inspect(attrs: dict[str, Any]) -> Limits:
    """A container's limits as the engine applied them (HostConfig of `docker inspect`)."""
    host_config = attrs.get("HostConfig") or {}
    cpu: float | None = None
    if host_config.get("NanoCpus"):
        cpu = host_config["NanoCpus"] / 1e9
    elif host_config.get("CpuQuota", 0) > 0:
        cpu = host_config["CpuQuota"] / (host_config.get("CpuPeriod") or 100_000)
    memory = host_config.get("Memory") or None
    return Limits(cpu_cores=cpu, memory_bytes=memory, enforced=cpu is not None and bool(memory))


def describe_exit(code: int) -> str:
    """`exit status 1`; `killed by SIGKILL` for docker's 128+N (what `process` says locally)."""
    return process.describe_status(128 - code if 128 < code < 160 else code)


class ExitWatcher:
    """Records each watched container (an instance, Prometheus, the collector, cAdvisor) that
    dies while the stack runs, with how it ended, the OOM kills the engine reported for it and
    its last lines, in `exits` (stack/events.json).

    The event stream is opened in `__init__`, so nothing after it returns is missed; a death
    the stack asks for (`expecting_exit`: a restart) is not recorded; `quiet()` stops recording
    (the stack is stopping: those deaths are ours); `close()` ends the stream and closes
    `client` (the watcher's own: the stream holds its connection).
    """

    def __init__(self, client: Any, exits: ExitLog, services: tuple[str, ...]) -> None:
        self.client, self.exits, self.services = client, exits, services
        self.died: dict[str, str] = {}  # service -> how, for readiness waits that fail fast
        self._ooms: collections.Counter[str] = collections.Counter()
        self._deaths: collections.Counter[str] = collections.Counter()
        self._expected: set[str] = set()
        self._quiet = threading.Event()
        filters = {"type": "container", "label": PROJECT_LABEL, "event": ["die", "oom"]}
        self._stream = client.events(decode=True, filters=filters)
        self._thread = threading.Thread(target=self._run, name="docker-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends with an error when closed
            for event in self._stream:
                attributes = event.get("Actor", {}).get("Attributes", {})
                service = attributes.get(SERVICE_LABEL, attributes.get("name", "?"))
                if event.get("Action") == "oom":
                    self._ooms[service] += 1
                elif event.get("Action") == "die":
                    self.died[service] = describe_exit(int(attributes.get("exitCode", -1)))
                    asked = self._quiet.is_set() or service in self._expected
                    if service in self.services and not asked:
                        self._record(service, event)
                    self._deaths[service] += 1

    def _record(self, service: str, event: dict[str, Any]) -> None:
        oom_kills, tail = self._ooms[service] or None, ""
        with contextlib.suppress(Exception):  # the container may be gone already
            container = self.client.containers.get(event["Actor"]["ID"])
            oom_kills = self._ooms[service] or int(container.attrs["State"]["OOMKilled"])
            tail = container.logs(tail=15).decode(errors="replace")
        at = int(event.get("timeNano", time.time_ns())) / 1e9
        self.exits.record(ServiceExit(service, at, self.died[service], oom_kills, tail))

    def gone(self, service: str) -> Callable[[], str | None]:
        """A `gone` for net.poll: why `service`'s container is no more, once it died."""
        return lambda: f"container {self.died[service]}" if service in self.died else None

    @contextlib.contextmanager
    def expecting_exit(self, service: str, running: bool) -> Iterator[None]:
        """Inside the block `service`'s container is stopped on purpose: its death is not a
        failure. When it was `running`, the block ends only once the engine's `die` event has
        been read, so a late event cannot be taken for a crash; then its death is forgotten."""
        seen = self._deaths[service]
        self._expected.add(service)
        try:
            yield
            if running:
                net.poll(lambda: self._deaths[service] > seen, 30, f"{service}'s stop event")
        finally:
            self._expected.discard(service)
        self.died.pop(service, None)

    def quiet(self) -> None:
        self._quiet.set()

    def close(self) -> None:
        self.quiet()
        with contextlib.suppress(Exception):
            self._stream.close()
        self._thread.join(timeout=10)
        self.client.close()


class K6Container:
    """k6 in a container: a `helpers.serving.protocol.LoadGenerator`. Its output is followed into
    `log_path` by a thread; its CPU time comes from the engine's stats (right even when the
    engine runs in a VM); `stop()` returns its exit status and removes the container."""

    def __init__(self, container: Any, log_path: Path, name: str = "k6") -> None:
        self.name = name
        self.container = container
        self.log_path = Path(log_path)
        self._exit_code: int | None = None
        self._follower = threading.Thread(target=self._follow_logs, daemon=True)
        self._follower.start()

    @classmethod
    def run(
        cls,
        client: Any,
        image: str,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        mounts: dict[Path, str],
        name: str,
        labels: dict[str, str],
    ) -> K6Container:
        """`k6 <args>` on the host network, outside every limit, as the calling user, with
        `mounts` (path -> "ro"/"rw") at their host paths, so k6's arguments need no
        translation; the first is the working directory."""
        container = client.containers.run(
            image,
            command=list(args),
            environment={k: v for k, v in env.items() if k != "PATH"} | {"HOME": "/tmp"},
            network_mode="host",
            user=f"{os.getuid()}:{os.getgid()}",
            volumes=[f"{path}:{path}:{mode}" for path, mode in mounts.items()],
            working_dir=str(next(iter(mounts))),
            labels=labels,
            name=name,
            detach=True,
        )
        return cls(container, log_path)

    def _follow_logs(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as file, contextlib.suppress(Exception):
            for chunk in self.container.logs(stream=True, follow=True):
                file.write(chunk)
                file.flush()

    def alive(self) -> bool:
        if self._exit_code is not None:
            return False
        try:
            self.container.reload()
        except Exception:
            return False
        return self.container.status in RUNNING

    def cpu_seconds(self) -> float | None:
        """user+system CPU seconds of the container so far; None once it has stopped."""
        if not self.alive():
            return None
        try:
            stats = self.container.stats(stream=False, one_shot=True)
            return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9 or None
        except Exception:
            return None

    def log_tail(self, lines: int = 20) -> str:
        return process.tail(self.log_path, lines)

    def stop(self, grace_s: float = 10.0) -> int:
        """SIGTERM (SIGKILL after `grace_s`), collect the exit status, remove the container."""
        if self._exit_code is None:
            with contextlib.suppress(Exception):
                if self.alive():
                    self.container.stop(timeout=int(grace_s))
            try:
                status = self.container.wait(timeout=grace_s + 30)
                self._exit_code = int(status.get("StatusCode", -1))
            except Exception:
                self._exit_code = -1
        self._follower.join(timeout=10)
        with contextlib.suppress(Exception):
            self.container.remove(force=True)
        return self._exit_code


def summary(attrs: dict[str, Any]) -> dict[str, Any]:
    """What stack.json keeps of a container's `docker inspect`."""
    return {
        "id": attrs["Id"],
        "name": attrs["Name"].lstrip("/"),
        "image": attrs["Config"]["Image"],
        "image_id": attrs["Image"],
        "pid": attrs["State"]["Pid"],
    }
