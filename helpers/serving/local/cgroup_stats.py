"""What a cgroup's files say: its limits and its usage, read the way cAdvisor reads them.

The local backend's exporter publishes these under cAdvisor's metric names, so the numbers of a
local run mean what a Docker run's mean: memory *working set* = usage − inactive file pages.
The cgroup's raw usage (and its peak) counts page cache — a service that reads a large file
looks big without owning that memory — so the raw figure is misleading as "the service's
memory". Both layouts (v1, v2) are read; `helpers.serving.local.cgroups` makes the cgroups.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil

from helpers.serving.local.cgroups import CFS_PERIOD_US, Cgroup, CgroupError
from helpers.serving.protocol import Usage

# v1 reports "no limit" as PAGE_COUNTER_MAX pages (9223372036854771712 on 4 KiB pages).
_V1_UNLIMITED_FLOOR = 1 << 62


@dataclass(frozen=True)
class CgroupLimits:
    """Limits as the kernel holds them (read back from the files, not what was requested)."""

    cpu_quota_us: int | None  # None = no quota
    cpu_period_us: int
    memory_limit_bytes: int | None  # None = no limit
    swap_limited: bool  # True when memory+swap is capped at the memory limit (or swap.max = 0)

    @property
    def cpu_cores(self) -> float | None:
        if self.cpu_quota_us is None:
            return None
        return self.cpu_quota_us / self.cpu_period_us


@dataclass(frozen=True)
class CgroupStats:
    """One reading of a cgroup, in cAdvisor's units and meanings."""

    cpu_usage_seconds: float
    memory_usage_bytes: int  # what the kernel charges, page cache included
    memory_working_set_bytes: int  # usage − inactive file: what cAdvisor and `docker stats` show
    memory_rss_bytes: int  # anonymous memory
    memory_cache_bytes: int
    cfs_periods: int
    cfs_throttled_periods: int
    cfs_throttled_seconds: float
    oom_kills: int


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _read_keyed(path: Path) -> dict[str, int]:
    """A flat keyed file (`key value` per line) such as memory.stat or cpu.stat."""
    values: dict[str, int] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                values[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return values


def read_limits(cgroup: Cgroup) -> CgroupLimits:
    """The limits the kernel enforces now, read back from the cgroup's files."""
    if not cgroup.enforced:
        return CgroupLimits(None, CFS_PERIOD_US, None, swap_limited=False)
    if cgroup.version == "v2":
        quota_text, period_text = cgroup.file("cpu", "cpu.max").read_text().split()
        memory_text = cgroup.file("memory", "memory.max").read_text().strip()
        swap_file = cgroup.file("memory", "memory.swap.max")
        swap_limited = not swap_file.exists() or swap_file.read_text().strip() == "0"
        return CgroupLimits(
            cpu_quota_us=None if quota_text == "max" else int(quota_text),
            cpu_period_us=int(period_text),
            memory_limit_bytes=None if memory_text == "max" else int(memory_text),
            swap_limited=swap_limited,
        )
    quota = _read_int(cgroup.file("cpu", "cpu.cfs_quota_us"))
    period = _read_int(cgroup.file("cpu", "cpu.cfs_period_us"))
    memory = _read_int(cgroup.file("memory", "memory.limit_in_bytes"))
    memsw_file = cgroup.file("memory", "memory.memsw.limit_in_bytes")
    # Without swap accounting (no memsw file) the kernel cannot swap a cgroup past the limit
    # unaccounted either way; the study machines have no swap configured.
    swap_limited = not memsw_file.exists() or _read_int(memsw_file) == memory
    return CgroupLimits(
        cpu_quota_us=None if quota < 0 else quota,
        cpu_period_us=period,
        memory_limit_bytes=None if memory >= _V1_UNLIMITED_FLOOR else memory,
        swap_limited=swap_limited,
    )


def read_stats(cgroup: Cgroup) -> CgroupStats:
    """CPU, memory, CFS throttling and OOM kills, computed as cAdvisor computes them."""
    if not cgroup.enforced:
        raise CgroupError(f"{cgroup.name} has no cgroup ({cgroup.reason})")
    if cgroup.version == "v2":
        return _read_stats_v2(cgroup)
    return _read_stats_v1(cgroup)


def _working_set(usage: int, inactive_file: int) -> int:
    # cAdvisor: workingSet = usage - inactive_file, floored at 0.
    return max(usage - inactive_file, 0)


def _read_stats_v1(cgroup: Cgroup) -> CgroupStats:
    usage_ns = _read_int(cgroup.file("cpuacct", "cpuacct.usage"))
    cpu_stat = _read_keyed(cgroup.file("cpu", "cpu.stat"))
    memory_stat = _read_keyed(cgroup.file("memory", "memory.stat"))
    usage = _read_int(cgroup.file("memory", "memory.usage_in_bytes"))
    oom = _read_keyed(cgroup.file("memory", "memory.oom_control"))
    return CgroupStats(
        cpu_usage_seconds=usage_ns / 1e9,
        memory_usage_bytes=usage,
        # v1 keys with the total_ prefix include descendants, as cAdvisor uses.
        memory_working_set_bytes=_working_set(usage, memory_stat.get("total_inactive_file", 0)),
        memory_rss_bytes=memory_stat.get("total_rss", 0),
        memory_cache_bytes=memory_stat.get("total_cache", 0),
        cfs_periods=cpu_stat.get("nr_periods", 0),
        cfs_throttled_periods=cpu_stat.get("nr_throttled", 0),
        cfs_throttled_seconds=cpu_stat.get("throttled_time", 0) / 1e9,
        oom_kills=oom.get("oom_kill", 0),
    )


def _read_stats_v2(cgroup: Cgroup) -> CgroupStats:
    cpu_stat = _read_keyed(cgroup.file("cpu", "cpu.stat"))
    memory_stat = _read_keyed(cgroup.file("memory", "memory.stat"))
    usage = _read_int(cgroup.file("memory", "memory.current"))
    events = _read_keyed(cgroup.file("memory", "memory.events"))
    return CgroupStats(
        cpu_usage_seconds=cpu_stat.get("usage_usec", 0) / 1e6,
        memory_usage_bytes=usage,
        memory_working_set_bytes=_working_set(usage, memory_stat.get("inactive_file", 0)),
        memory_rss_bytes=memory_stat.get("anon", 0),
        memory_cache_bytes=memory_stat.get("file", 0),
        cfs_periods=cpu_stat.get("nr_periods", 0),
        cfs_throttled_periods=cpu_stat.get("nr_throttled", 0),
        cfs_throttled_seconds=cpu_stat.get("throttled_usec", 0) / 1e6,
        oom_kills=events.get("oom_kill", 0),
    )


def usage(cgroup: Cgroup, pid: int) -> Usage:
    """What a window of load reads before and after: the cgroup's counters, or — where
    cgroups could not be made — the process tree's CPU and RSS (no CFS figures)."""
    if cgroup.enforced:
        read = read_stats(cgroup)
        return Usage(
            read.cpu_usage_seconds,
            read.cfs_periods,
            read.cfs_throttled_periods,
            read.memory_working_set_bytes,
            read.oom_kills,
        )
    try:
        tree = psutil.Process(pid)
        members = [tree, *tree.children(recursive=True)]
        cpu = sum(sum(m.cpu_times()[:2]) for m in members)
        rss = sum(m.memory_info().rss for m in members)
    except psutil.Error:
        cpu, rss = 0.0, 0
    return Usage(cpu, 0, 0, rss, 0)
