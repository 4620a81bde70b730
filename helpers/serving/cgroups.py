"""Linux cgroups for the local backend: the same 0.5 CPU / 128 MiB a container gets, without Docker.

Each service runs in its own cgroup `onnx-study/<run-id>/<service>` under the root of each
hierarchy. The cgroup is created and limited first and the child process joins it *before*
exec (`join_before_exec`), so Go (GOMAXPROCS) and ONNX Runtime see the limit from their first
instruction, exactly as in a container.

Both layouts are supported, detected from /proc/self/mounts:
- v2 (unified): one directory, `cpu.max`, `memory.max`, `memory.swap.max`, `memory.stat`;
- v1: one directory per controller (`cpu`, `cpuacct`, `memory` — separate or co-mounted),
  `cpu.cfs_quota_us`/`cpu.cfs_period_us`, `memory.limit_in_bytes` (+ `memory.memsw.*`).

Statistics are read the way cAdvisor reads them, so the local backend publishes the numbers a
Docker run reports: memory *working set* = usage − inactive file pages. The cgroup's raw usage
(and its peak) counts page cache — a service that reads a large file looks big without owning
that memory — so the raw figure is misleading as "the service's memory".

If cgroups cannot be created (no permission, no controllers), `create_cgroup` returns an
*unlimited* marker (`Cgroup.enforced is False`, with the reason) instead of failing: the study
continues without limits and says so (limits_enforced false).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

STUDY_PARENT = "onnx-study"
MIB = 1024 * 1024
DEFAULT_CPU_CORES = 0.5
DEFAULT_MEMORY_BYTES = 128 * MIB
CFS_PERIOD_US = 100_000  # the kernel's and Docker's default period
V1_CONTROLLERS = ("cpu", "cpuacct", "memory")
# v1 reports "no limit" as PAGE_COUNTER_MAX pages (9223372036854771712 on 4 KiB pages).
_V1_UNLIMITED_FLOOR = 1 << 62
_NAME_OK = re.compile(r"^[A-Za-z0-9_.-]+$")


class CgroupError(RuntimeError):
    """A cgroup file did not hold what the kernel documents, or a cgroup could not be removed."""


@dataclass(frozen=True)
class Layout:
    """Where the hierarchies are mounted: v1 one root per controller, v2 one unified root."""

    version: str  # "v1" | "v2"
    roots: dict[str, Path]  # v1: {"cpu","cpuacct","memory"} -> mount; v2: {"unified": mount}

    def dirs(self, relpath: str) -> dict[str, Path]:
        """The directory of cgroup `relpath` in each hierarchy (one per controller in v1)."""
        return {key: root / relpath for key, root in self.roots.items()}


@dataclass(frozen=True)
class Cgroup:
    """One service's cgroup, or the *unlimited* marker (version "none") when none could be made."""

    name: str
    relpath: str  # relative to each hierarchy root, e.g. "onnx-study/run-1/go-api-onnx"
    version: str  # "v1" | "v2" | "none"
    dirs: dict[str, Path] = field(default_factory=dict)
    reason: str = ""  # why it is unlimited

    @property
    def enforced(self) -> bool:
        return self.version != "none"

    @classmethod
    def unlimited(cls, name: str, reason: str) -> Cgroup:
        return cls(name=name, relpath="", version="none", dirs={}, reason=reason)

    def file(self, controller: str, filename: str) -> Path:
        """A control file; in v2 every controller lives in the one unified directory."""
        key = "unified" if self.version == "v2" else controller
        return self.dirs[key] / filename


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


# --- detection -----------------------------------------------------------------------------


def detect_layout(mounts_file: Path = Path("/proc/self/mounts")) -> Layout | None:
    """v2 if the unified hierarchy owns the cpu and memory controllers, else v1, else None.

    On hybrid machines v2 is mounted too (e.g. /sys/fs/cgroup/unified) but usually without
    controllers — they are bound to v1 — so the controllers decide, not the mount's presence.
    """
    v1: dict[str, Path] = {}
    unified: Path | None = None
    for line in mounts_file.read_text().splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        mountpoint, fstype, options = Path(parts[1]), parts[2], parts[3].split(",")
        if fstype == "cgroup2":
            unified = mountpoint
        elif fstype == "cgroup":
            for controller in V1_CONTROLLERS:
                if controller in options:
                    v1.setdefault(controller, mountpoint)
    if unified is not None:
        try:
            controllers = (unified / "cgroup.controllers").read_text().split()
        except OSError:
            controllers = []
        if {"cpu", "memory"} <= set(controllers):
            return Layout("v2", {"unified": unified})
    if all(c in v1 for c in V1_CONTROLLERS):
        return Layout("v1", dict(v1))
    return None


def _check_name(kind: str, value: str) -> None:
    if not _NAME_OK.match(value):
        raise ValueError(f"{kind} {value!r} is not a valid cgroup name: use letters, digits, _ . -")


# --- creation ------------------------------------------------------------------------------


def create_cgroup(
    run_id: str,
    name: str,
    cpu_cores: float | None = DEFAULT_CPU_CORES,
    memory_bytes: int | None = DEFAULT_MEMORY_BYTES,
    layout: Layout | None = None,
) -> Cgroup:
    """Create `onnx-study/<run_id>/<name>` and set its limits; the unlimited marker if we can't.

    Bad arguments raise ValueError; an environment that does not let us write cgroups (no
    root, read-only /sys, no controllers) is not an error — the caller gets a marker whose
    `reason` says why, so the study can go on and report it.
    """
    _check_name("run id", run_id)
    _check_name("cgroup name", name)
    if cpu_cores is not None and not 0.01 <= cpu_cores <= 1024:
        raise ValueError(f"cpu_cores must be between 0.01 and 1024, got {cpu_cores}")
    if memory_bytes is not None and memory_bytes < 8 * MIB:
        raise ValueError(f"memory_bytes must be at least 8 MiB, got {memory_bytes}")
    layout = layout or detect_layout()
    if layout is None:
        return Cgroup.unlimited(name, "no cgroup hierarchy with the cpu and memory controllers")
    relpath = f"{STUDY_PARENT}/{run_id}/{name}"
    cgroup = Cgroup(name=name, relpath=relpath, version=layout.version, dirs=layout.dirs(relpath))
    try:
        if layout.version == "v2":
            _create_v2(layout, cgroup, cpu_cores, memory_bytes)
        else:
            _create_v1(cgroup, cpu_cores, memory_bytes)
    except OSError as error:
        reason = f"cannot write cgroup {relpath} ({layout.version}): {error}"
        with contextlib.suppress(OSError, CgroupError):
            remove_cgroup(cgroup)
        return Cgroup.unlimited(name, reason)
    return cgroup


def _mkdirs(path: Path) -> None:
    # A concurrent cleanup may rmdir an empty parent between our mkdir calls: retry a few times.
    for _ in range(5):
        try:
            path.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:
            continue
    path.mkdir(parents=True, exist_ok=True)


def _write(path: Path, value: str) -> None:
    with path.open("w") as handle:
        handle.write(value)


def _create_v1(cgroup: Cgroup, cpu_cores: float | None, memory_bytes: int | None) -> None:
    for directory in cgroup.dirs.values():
        _mkdirs(directory)
    cpu = cgroup.dirs["cpu"]
    _write(cpu / "cpu.cfs_period_us", str(CFS_PERIOD_US))
    quota = -1 if cpu_cores is None else round(cpu_cores * CFS_PERIOD_US)
    _write(cpu / "cpu.cfs_quota_us", str(quota))
    memory = cgroup.dirs["memory"]
    limit = "-1" if memory_bytes is None else str(memory_bytes)
    # memory first: memsw must always be >= memory.limit_in_bytes.
    _write(memory / "memory.limit_in_bytes", limit)
    memsw = memory / "memory.memsw.limit_in_bytes"
    if memsw.exists():  # swap accounting on: cap memory+swap too, so swap cannot extend the limit
        _write(memsw, limit)
    swappiness = memory / "memory.swappiness"
    if swappiness.exists() and memory_bytes is not None:
        with contextlib.suppress(OSError):  # only a hint; the memsw cap is what enforces it
            _write(swappiness, "0")


def _create_v2(
    layout: Layout, cgroup: Cgroup, cpu_cores: float | None, memory_bytes: int | None
) -> None:
    root = layout.roots["unified"]
    directory = cgroup.dirs["unified"]
    _mkdirs(directory)
    # Controllers must be delegated down every level from the root to our parent.
    level = root
    for part in Path(cgroup.relpath).parent.parts:
        _write(level / "cgroup.subtree_control", "+cpu +memory")
        level = level / part
    _write(level / "cgroup.subtree_control", "+cpu +memory")
    quota = "max" if cpu_cores is None else str(round(cpu_cores * CFS_PERIOD_US))
    _write(directory / "cpu.max", f"{quota} {CFS_PERIOD_US}")
    _write(directory / "memory.max", "max" if memory_bytes is None else str(memory_bytes))
    swap = directory / "memory.swap.max"
    if swap.exists():
        _write(swap, "0" if memory_bytes is not None else "max")


def open_cgroup(name: str, relpath: str, layout: Layout | None = None) -> Cgroup:
    """An existing cgroup by its path relative to the hierarchy roots (used by the exporter)."""
    layout = layout or detect_layout()
    if layout is None:
        raise CgroupError("no cgroup hierarchy with the cpu and memory controllers is mounted")
    relpath = relpath.strip("/")
    return Cgroup(name=name, relpath=relpath, version=layout.version, dirs=layout.dirs(relpath))


def join_before_exec(cgroup: Cgroup) -> Callable[[], None]:
    """A callable for `helpers.serving.process.start(before_exec=[...])`: the child joins `cgroup`.

    It runs in the forked child before exec, so the service's program starts inside its
    limits. Paths are computed here, in the parent, so the child only opens and writes. For
    the unlimited marker it does nothing.
    """
    if not cgroup.enforced:
        return lambda: None
    targets = [str(d / "cgroup.procs") for d in cgroup.dirs.values()]

    def join() -> None:
        pid = str(os.getpid()).encode()
        for target in targets:
            fd = os.open(target, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    return join


# --- reading -------------------------------------------------------------------------------


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


def pids(cgroup: Cgroup) -> list[int]:
    """Every process in the cgroup (union over the v1 controllers: a pid may sit in only some)."""
    found: set[int] = set()
    for directory in cgroup.dirs.values():
        try:
            found.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
        except FileNotFoundError:
            continue
    return sorted(found)


# --- removal -------------------------------------------------------------------------------


def remove_cgroup(cgroup: Cgroup, timeout_s: float = 5.0) -> None:
    """SIGKILL what is left inside, wait until the cgroup is empty, then rmdir it.

    A cgroup with processes cannot be removed (EBUSY), and a process that exits is only
    gone from cgroup.procs once reaped, so this polls (no fixed sleep) up to `timeout_s`.
    """
    if not cgroup.enforced:
        return
    deadline = time.monotonic() + timeout_s
    while True:
        left = pids(cgroup)
        if not left:
            break
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise CgroupError(f"cgroup {cgroup.relpath} still holds pids {left} after SIGKILL")
        _reap(left)
        time.sleep(0.02)
    for directory in cgroup.dirs.values():
        _rmdir_when_empty(directory, deadline)


def _reap(candidates: list[int]) -> None:
    # A killed child of ours stays a zombie — and in cgroup.procs — until waited for. Only
    # these pids are reaped, never waitpid(-1): that would steal other Popen objects' statuses.
    for pid in candidates:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue


def _rmdir_when_empty(directory: Path, deadline: float) -> None:
    while True:
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as error:
            # EBUSY while the kernel finishes tearing down a just-emptied cgroup.
            if error.errno != errno.EBUSY or time.monotonic() > deadline:
                raise CgroupError(f"cannot remove cgroup {directory}: {error}") from error
            time.sleep(0.02)


def remove_run(run_id: str, layout: Layout | None = None) -> None:
    """Remove the run's parent cgroup, and the study parent when no other run uses it."""
    layout = layout or detect_layout()
    if layout is None:
        return
    for root in layout.roots.values():
        for directory in (root / STUDY_PARENT / run_id, root / STUDY_PARENT):
            try:
                directory.rmdir()
            except FileNotFoundError:
                continue
            except OSError as error:
                if error.errno in (errno.EBUSY, errno.ENOTEMPTY):
                    break  # still in use (another run, or a child we could not remove)
                raise


def _age_s(cgroup: Cgroup) -> float:
    """Seconds since the cgroup was created (cgroupfs sets the directory's ctime then)."""
    ages = []
    for directory in cgroup.dirs.values():
        try:
            ages.append(time.time() - directory.stat().st_ctime)
        except FileNotFoundError:
            continue
    return min(ages, default=float("inf"))


def clean_stale(
    layout: Layout | None = None,
    keep_run: str | None = None,
    min_age_s: float = 120.0,
    prefix: str = "",
) -> list[str]:
    """Remove cgroups of earlier runs that hold no process; returns their relative paths.

    A killed kernel (SIGKILL, OOM) runs no cleanup; PR_SET_PDEATHSIG kills its services but
    their empty cgroups stay. A cgroup that still has processes belongs to a live run — maybe
    another user's — and is left alone; so is an empty one younger than `min_age_s`, which
    may be a run still starting (cgroups are made before Prometheus, the services join after).
    `prefix` limits the sweep to run ids starting with it (tests sweep only their own).
    """
    layout = layout or detect_layout()
    if layout is None:
        return []
    removed: list[str] = []
    run_ids: set[str] = set()
    for root in layout.roots.values():
        parent = root / STUDY_PARENT
        if parent.is_dir():
            run_ids.update(
                p.name for p in parent.iterdir() if p.is_dir() and p.name.startswith(prefix)
            )
    for run_id in sorted(run_ids - {keep_run}):
        names: set[str] = set()
        for root in layout.roots.values():
            run_dir = root / STUDY_PARENT / run_id
            if run_dir.is_dir():
                names.update(p.name for p in run_dir.iterdir() if p.is_dir())
        for name in sorted(names):
            cgroup = open_cgroup(name, f"{STUDY_PARENT}/{run_id}/{name}", layout)
            if pids(cgroup) or _age_s(cgroup) < min_age_s:
                continue
            try:
                remove_cgroup(cgroup, timeout_s=1.0)
                removed.append(cgroup.relpath)
            except CgroupError:
                continue
        remove_run(run_id, layout)
    return removed
