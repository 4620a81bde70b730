"""Which machine a run measured on, read off the machine itself when a stack starts.

Machines of the same kind differ 2–3× in absolute CPU per request, so a figure means little
without the machine it came from: every stack.json and summary.json records the CPU model,
the cores this process may use, the frequency governor where the kernel exposes it, the
kernel, the cgroup version, the load average and the CPU time stolen by a hypervisor. The
figures meant to travel between machines are ratios measured in one run (a service's CPU per
request over its framework's no-op floor, over Go's); this record is what tells two runs'
machines apart when their absolute figures disagree.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import psutil

CPUINFO = Path("/proc/cpuinfo")
GOVERNOR = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
CGROUP2_MARKER = Path("/sys/fs/cgroup/cgroup.controllers")
OS_RELEASE = Path("/etc/os-release")


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in CPUINFO.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    except OSError:
        return None
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _os_name() -> str | None:
    text = _read(OS_RELEASE) or ""
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return None


def describe() -> dict[str, Any]:
    """The machine now: what it is, and how busy it is before anything is measured."""
    flags = (_cpuinfo_field("flags") or "").split()
    times = psutil.cpu_times()
    load1, load5, load15 = os.getloadavg()
    return {
        "cpu_model": _cpuinfo_field("model name") or platform.machine(),
        "cpu_mhz": _float(_cpuinfo_field("cpu MHz")),
        "logical_cpus": psutil.cpu_count(logical=True),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "frequency_governor": _read(GOVERNOR) or "not exposed (a VM, or no cpufreq driver)",
        "virtualised": "hypervisor" in flags,
        "kernel": platform.release(),
        "os": _os_name(),
        "cgroup_version": "v2" if CGROUP2_MARKER.exists() else "v1",
        "memory_bytes": psutil.virtual_memory().total,
        "load_average": {"1m": load1, "5m": load5, "15m": load15},
        "steal_seconds": getattr(times, "steal", 0.0),
        "python": platform.python_version(),
    }


def stolen_share(before: dict[str, Any], after: dict[str, Any], elapsed_s: float) -> float:
    """Share of the machine's CPU time a hypervisor took between two `describe()` readings
    (a neighbour on the same host shows here, not in any of the study's own counters)."""
    cpus = after.get("logical_cpus") or 1
    stolen = after.get("steal_seconds", 0.0) - before.get("steal_seconds", 0.0)
    return stolen / (elapsed_s * cpus) if elapsed_s > 0 else 0.0


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None
