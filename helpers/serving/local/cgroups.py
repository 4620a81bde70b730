"""Linux cgroups for the local backend: the 0.5 CPU / 128 MiB a container gets, without Docker.

Each service runs in its own cgroup `onnx-study/<run-id>/<service>` under the root of each
hierarchy. The cgroup is created and limited first and the child process joins it *before*
exec (`join_before_exec`), so Go (GOMAXPROCS) and ONNX Runtime see the limit from their first
instruction, exactly as in a container.

Both layouts are supported, detected from /proc/self/mounts:
- v2 (unified): one directory, `cpu.max`, `memory.max`, `memory.swap.max`, `memory.stat`;
- v1: one directory per controller (`cpu`, `cpuacct`, `memory` — separate or co-mounted),
  `cpu.cfs_quota_us`/`cpu.cfs_period_us`, `memory.limit_in_bytes` (+ `memory.memsw.*`).

Reading a cgroup's limits and usage is `helpers.serving.local.cgroup_stats`; removing cgroups (a
run's own, and those a killed run left) is `helpers.serving.local.cgroup_removal`.

If cgroups cannot be created (no permission, no controllers), `create_cgroup` returns an
*unlimited* marker (`Cgroup.enforced is False`, with the reason) instead of failing: the study
continues without limits and says so (limits_enforced false).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

STUDY_PARENT = "onnx-study"
MIB = 1024 * 1024
DEFAULT_CPU_CORES = 0.5
DEFAULT_MEMORY_BYTES = 128 * MIB
CFS_PERIOD_US = 100_000  # the kernel's and Docker's default period
V1_CONTROLLERS = ("cpu", "cpuacct", "memory")
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
        for directory in cgroup.dirs.values():  # nothing has joined it yet: rmdir is enough
            with contextlib.suppress(OSError):
                directory.rmdir()
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


def pids(cgroup: Cgroup) -> list[int]:
    """Every process in the cgroup (union over the v1 controllers: a pid may sit in only some)."""
    found: set[int] = set()
    for directory in cgroup.dirs.values():
        try:
            found.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
        except FileNotFoundError:
            continue
    return sorted(found)
