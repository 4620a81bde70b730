"""Watching a local stack's processes: an exit nobody asked for is recorded the moment it happens.

One thread per process — every instance, and Prometheus, the exporter and the collector that
measure them — blocks on its exit. Unless the stack is stopping, or restarting that very
process, the exit is a failure: recorded with how it ended, the OOM kills its cgroup counted
and its last log lines (helpers.serving.protocol.ExitLog), so a dead Prometheus reads as what
it is, not as a quiet service.
"""

from __future__ import annotations

import threading
import time

from helpers.serving import process
from helpers.serving.local import cgroup_stats, cgroups
from helpers.serving.protocol import ExitLog, ServiceExit


class Watchers:
    def __init__(
        self,
        exits: ExitLog,
        processes: dict[str, process.ManagedProcess],
        groups: dict[str, cgroups.Cgroup],
    ) -> None:
        self.exits, self.processes, self.groups = exits, processes, groups
        self.stopping = threading.Event()
        self.restarting: set[str] = set()

    def watch(self, name: str) -> None:
        """Watch the process now running under `name`, in a daemon thread."""
        managed = self.processes[name]
        threading.Thread(target=self._wait, args=(name, managed), daemon=True).start()

    def _wait(self, name: str, managed: process.ManagedProcess) -> None:
        status = managed.popen.wait()
        asked = self.stopping.is_set() or name in self.restarting
        if asked or managed is not self.processes.get(name):
            return  # a stop or a restart: the new process has a watcher of its own
        self.exits.record(
            ServiceExit(
                name,
                time.time(),
                process.describe_status(status),
                self._oom_kills(name),
                managed.log_tail(15),
            )
        )

    def _oom_kills(self, name: str) -> int | None:
        group = self.groups.get(name)
        if group is None or not group.enforced:
            return None
        try:
            return cgroup_stats.read_stats(group).oom_kills
        except (OSError, cgroups.CgroupError):
            return None
