"""What the host reads of a running instance's container: its cgroup, the limits the kernel holds
there, and its counters — the same files, read the same way, as the local backend's cgroups.

A container's cgroup is found from its main process (`/proc/<pid>/cgroup`); it keeps its path
when the container is stopped and started again (the path is named after the container's id),
so it is found once. Where the host cannot see it (the engine runs in a VM), the engine's own
figures stand in: the limits from `docker inspect`, the counters from `docker stats`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from helpers.serving.docker.containers import limits_from_inspect
from helpers.serving.docker.topology import cgroup_relpath
from helpers.serving.instances import Instance
from helpers.serving.local import cgroup_stats, cgroups
from helpers.serving.protocol import Limits, Usage


def container_cgroup(name: str, attrs: dict[str, Any]) -> cgroups.Cgroup | None:
    """The container's cgroup on this host (None: not readable here, e.g. the engine is in a VM)."""
    pid = int((attrs.get("State") or {}).get("Pid") or 0)
    if not pid:
        return None
    try:
        group = cgroups.open_cgroup(name, cgroup_relpath(pid))
        cgroup_stats.read_limits(group)  # readable, not only named
    except (OSError, cgroups.CgroupError, ValueError):
        return None
    return group


def _same(read: float | None, asked: float | None) -> bool:
    if read is None or asked is None:
        return read is None and asked is None
    return math.isclose(read, asked, rel_tol=1e-3)


def limits(attrs: dict[str, Any], group: cgroups.Cgroup | None, asked: Instance) -> Limits:
    """The instance's limits as the kernel holds them in its cgroup (else as the engine reports
    them); `enforced` when they are what the instance asked for — no limit included."""
    if group is not None:
        read = cgroup_stats.read_limits(group)
        cpu, memory = read.cpu_cores, read.memory_limit_bytes
    else:
        inspected = limits_from_inspect(attrs)
        cpu, memory = inspected.cpu_cores, inspected.memory_bytes
    enforced = _same(cpu, asked.cpu_cores) and _same(memory, asked.memory_bytes)
    return Limits(cpu_cores=cpu, memory_bytes=memory, enforced=enforced)


def all_limits(
    instances: Mapping[str, Instance],
    attrs: Mapping[str, dict[str, Any]],
    groups: Mapping[str, cgroups.Cgroup | None],
) -> tuple[dict[str, Limits], str]:
    """Every instance's `limits`, and why they are not enforced in words ('' when they are)."""
    read = {name: limits(attrs[name], groups[name], i) for name, i in instances.items()}
    wrong = [name for name, limit in read.items() if not limit.enforced]
    note = (
        f"the limits of {', '.join(wrong)} are not the ones asked for (compose did not apply "
        "deploy.resources.limits?)"
        if wrong
        else ""
    )
    return read, note


def usage(group: cgroups.Cgroup | None, container: Any) -> Usage:
    """The instance's counters now: its cgroup's files, or the engine's stats where the host
    cannot read them (cAdvisor's working set: usage minus inactive file pages, either way)."""
    if group is not None:
        return cgroup_stats.usage(group, int(container.attrs["State"].get("Pid") or 0))
    stats = container.stats(stream=False)
    cpu = stats.get("cpu_stats") or {}
    throttling = cpu.get("throttling_data") or {}
    memory = stats.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    return Usage(
        cpu_usage_seconds=(cpu.get("cpu_usage") or {}).get("total_usage", 0) / 1e9,
        cfs_periods=int(throttling.get("periods", 0)),
        cfs_throttled_periods=int(throttling.get("throttled_periods", 0)),
        memory_working_set_bytes=max(int(memory.get("usage", 0)) - int(inactive), 0),
        oom_kills=int(detail.get("oom_kill", 0)),
    )
