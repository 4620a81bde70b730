"""The local stack's cgroups: one per instance, limited like a container, its limits read back.

The limits a run reports are the ones the kernel holds (read back from the cgroup files), not
the ones asked for. Where cgroups cannot be made, the services run unlimited and this says so
loudly: every number of such a run is measured without the study's budget.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from helpers.serving import collector
from helpers.serving.instances import Instance
from helpers.serving.local import cgroup_stats, cgroups
from helpers.serving.protocol import Limits


def create_cgroups(
    run_id: str,
    run_dir: Path,
    instances: Mapping[str, Instance],
    with_collector: bool,
    groups: dict[str, cgroups.Cgroup],
    limits: dict[str, Limits],
) -> str:
    """Create the run's cgroups into `groups` (filled as it goes, so the stack removes what a
    failure half-way left) and their limits into `limits`; returns why limits are not enforced
    ('' when they are)."""
    if with_collector:  # measured, not limited: the post gave it CPUs of its own
        groups[collector.NAME] = cgroups.create_cgroup(
            run_id, collector.NAME, cpu_cores=None, memory_bytes=None
        )
    services = list(instances)
    for name, instance in instances.items():
        group = cgroups.create_cgroup(run_id, name, instance.cpu_cores, instance.memory_bytes)
        if group.enforced and cgroups.pids(group):
            raise RuntimeError(
                f"cgroup {group.relpath} already holds processes {cgroups.pids(group)}: "
                f"another stack is running with run folder {run_dir}; use a new one"
            )
        groups[name] = group
        read = cgroup_stats.read_limits(group)
        limits[name] = Limits(read.cpu_cores, read.memory_limit_bytes, group.enforced)
    if all(groups[name].enforced for name in services):
        return ""
    note = "; ".join(sorted({g.reason for g in groups.values() if not g.enforced}))
    banner = "!" * 78
    print(
        f"{banner}\nLIMITS NOT ENFORCED — the services run WITHOUT their CPU and memory limits.\n"
        f"{note}\nResults of this run are not comparable with limited runs.\n{banner}",
        file=sys.stderr,
        flush=True,
    )
    return note
