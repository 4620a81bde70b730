"""Removing the local backend's cgroups: a run's own when it stops, everything of a run that
was stopped abruptly (Ctrl-C, a killed kernel), and the empty ones earlier runs left behind.

A cgroup with processes cannot be removed, so what is left inside is killed (and reaped, when
it is a child of ours) first; the kernel may still answer EBUSY for a moment, so each step
polls. Creating and reading cgroups is `helpers.serving.local.cgroups` / `cgroup_stats`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from pathlib import Path

from helpers import net
from helpers.serving.local.cgroups import (
    STUDY_PARENT,
    Cgroup,
    CgroupError,
    Layout,
    detect_layout,
    open_cgroup,
    pids,
)


def remove_cgroup(cgroup: Cgroup, timeout_s: float = 5.0) -> None:
    """SIGKILL what is left inside, wait until the cgroup is empty, then rmdir it.

    A cgroup with processes cannot be removed (EBUSY), and a process that exits is only
    gone from cgroup.procs once reaped, so this polls up to `timeout_s`.
    """
    if not cgroup.enforced:
        return

    def emptied() -> bool:
        left = pids(cgroup)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            # A killed child of ours stays a zombie — and in cgroup.procs — until waited for.
            # Only these pids are reaped, never waitpid(-1): that would steal other Popen
            # objects' statuses.
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        if left:
            raise net.NotReady(f"pids {left} still inside")
        return True

    def removed(directory: Path) -> bool:
        try:
            directory.rmdir()
        except FileNotFoundError:
            pass
        except OSError as error:
            # EBUSY while the kernel finishes tearing down a just-emptied cgroup.
            if error.errno != errno.EBUSY:
                raise CgroupError(f"cannot remove cgroup {directory}: {error}") from error
            raise net.NotReady(str(error)) from None
        return True

    try:
        net.poll(emptied, timeout_s, f"emptying cgroup {cgroup.relpath}", interval_s=0.02)
        for directory in cgroup.dirs.values():
            net.poll(lambda d=directory: removed(d), timeout_s, f"rmdir {directory}", 0.02)
    except net.NotReady as error:
        raise CgroupError(str(error)) from None


def remove_all(run_id: str, layout: Layout | None = None) -> list[str]:
    """Kill whatever runs in a run's cgroups and remove them all (a run stopped abruptly:
    Ctrl-C, a killed kernel); returns the removed paths."""
    return clean_stale(layout, min_age_s=0.0, only_run=run_id, kill=True)


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
    only_run: str | None = None,
    kill: bool = False,
) -> list[str]:
    """Remove cgroups of earlier runs that hold no process; returns their relative paths.

    A killed kernel (SIGKILL, OOM) runs no cleanup; PR_SET_PDEATHSIG kills its services but
    their empty cgroups stay. A cgroup that still has processes belongs to a live run — maybe
    another user's — and is left alone; so is an empty one younger than `min_age_s`, which
    may be a run still starting (cgroups are made before Prometheus, the services join after).
    `prefix` limits the sweep to run ids starting with it (tests sweep only their own),
    `only_run` to one run; `kill=True` also removes cgroups that still hold processes.
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
    if only_run is not None:
        run_ids &= {only_run}
    for run_id in sorted(run_ids - {keep_run}):
        names: set[str] = set()
        for root in layout.roots.values():
            run_dir = root / STUDY_PARENT / run_id
            if run_dir.is_dir():
                names.update(p.name for p in run_dir.iterdir() if p.is_dir())
        for name in sorted(names):
            cgroup = open_cgroup(name, f"{STUDY_PARENT}/{run_id}/{name}", layout)
            if not kill and (pids(cgroup) or _age_s(cgroup) < min_age_s):
                continue
            try:
                remove_cgroup(cgroup, timeout_s=1.0)
                removed.append(cgroup.relpath)
            except CgroupError:
                continue
        remove_run(run_id, layout)
    return removed
