"""helpers.serving.local.cgroups and .exporter against real cgroups and real child processes.

The point of the exporter is to report what cAdvisor would: these tests make a child do the
thing (allocate, burn CPU, read a big file, blow the limit) and check that the numbers move
the way the kernel's accounting says they must. Tests that need writable cgroups skip — with
the reason — where cgroups cannot be created (no root, read-only /sys).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from helpers.serving.local import cgroup_removal, cgroup_stats, cgroups
from helpers.serving.local import exporter as cgroup_exporter

MIB = 1024 * 1024


@pytest.fixture
def cgroup() -> Iterator[cgroups.Cgroup]:
    """A fresh study cgroup limited to 0.5 CPU / 128 MiB, removed afterwards."""
    run_id = f"unit-{uuid.uuid4().hex[:8]}"
    group = cgroups.create_cgroup(run_id, "probe")
    if not group.enforced:
        pytest.skip(f"cgroups not writable here: {group.reason}")
    try:
        yield group
    finally:
        cgroup_removal.remove_cgroup(group)
        cgroup_removal.remove_run(run_id)
        assert not any(d.exists() for d in group.dirs.values())


def child(group: cgroups.Cgroup, code: str) -> subprocess.Popen[str]:
    """A Python child that joins `group` before exec and talks over stdin/stdout.

    The children print a line when they reach the state under test and then wait for stdin to
    close, so the test reads the cgroup at a known moment without sleeping.
    """
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=cgroups.join_before_exec(group),
    )


def allocating(mib: int, message: str) -> str:
    """Child code: allocate and touch `mib` MiB (every page, so it is resident), then report."""
    return (
        f"import sys; block = bytearray({mib} * 1024 * 1024)\n"
        "block[::4096] = b'x' * (len(block) // 4096)\n"
        f"print({message!r}, flush=True); sys.stdin.read()"
    )


WAIT = "import sys; print('up', flush=True); sys.stdin.read()"


def finish(proc: subprocess.Popen[str]) -> int:
    assert proc.stdin is not None
    proc.stdin.close()
    return proc.wait(timeout=30)


def test_limits_read_back_as_half_a_core_and_128_mib(cgroup: cgroups.Cgroup) -> None:
    limits = cgroup_stats.read_limits(cgroup)
    assert limits.cpu_quota_us == 50_000
    assert limits.cpu_period_us == 100_000
    assert limits.cpu_cores == 0.5
    assert limits.memory_limit_bytes == 128 * MIB
    assert limits.swap_limited


def test_child_runs_inside_its_cgroup_from_exec(cgroup: cgroups.Cgroup) -> None:
    proc = child(
        cgroup,
        "import sys; print(repr(open('/proc/self/cgroup').read()), flush=True); sys.stdin.read()",
    )
    assert proc.stdout is not None
    own = ast.literal_eval(proc.stdout.readline())
    assert proc.pid in cgroups.pids(cgroup)
    # In every controller we limit or account with, the child sits in the study's cgroup.
    controllers = ("cpu", "cpuacct", "memory") if cgroup.version == "v1" else ("",)
    lines = own.splitlines()
    for controller in controllers:
        line = next(x for x in lines if controller in x.split(":")[1].split(",") or not controller)
        assert line.endswith("/" + cgroup.relpath), (controller, line)
    assert finish(proc) == 0


def test_allocated_memory_shows_in_working_set_and_rss(cgroup: cgroups.Cgroup) -> None:
    before = cgroup_stats.read_stats(cgroup)
    proc = child(cgroup, allocating(64, "allocated"))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "allocated"
    during = cgroup_stats.read_stats(cgroup)
    assert finish(proc) == 0
    assert during.memory_working_set_bytes - before.memory_working_set_bytes >= 64 * MIB
    assert during.memory_rss_bytes >= 64 * MIB
    assert during.memory_usage_bytes >= during.memory_working_set_bytes


def test_burning_cpu_counts_usage_and_gets_throttled(cgroup: cgroups.Cgroup) -> None:
    """A process that wants a whole core gets half: the kernel throttles it every period.

    The throttling is only certain if the process could have run more than its quota. On a
    machine so busy that the child got less than half a core anyway, the quota never bites —
    then the test says so and skips instead of blaming the exporter.
    """
    before = cgroup_stats.read_stats(cgroup)
    started = time.monotonic()
    proc = child(
        cgroup,
        "import time, sys\nstart = time.process_time()\n"
        "while time.process_time() - start < 0.4: pass\n"
        "print('done', flush=True); sys.stdin.read()",
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "done"
    wall_s = time.monotonic() - started
    after = cgroup_stats.read_stats(cgroup)
    assert finish(proc) == 0
    used_s = after.cpu_usage_seconds - before.cpu_usage_seconds
    assert used_s >= 0.4
    assert after.cfs_periods > before.cfs_periods
    if after.cfs_throttled_periods == before.cfs_throttled_periods and used_s / wall_s < 0.45:
        pytest.skip(f"machine busy: the child got {used_s / wall_s:.2f} cores, under its quota")
    assert after.cfs_throttled_periods > before.cfs_throttled_periods
    assert after.cfs_throttled_seconds > before.cfs_throttled_seconds


def test_page_cache_raises_usage_but_not_working_set(
    cgroup: cgroups.Cgroup, tmp_path: Path
) -> None:
    """Reading a big file charges its page cache to the cgroup: the naive usage (and its peak)
    grows by the file's size, the working set does not — the pages are inactive file cache the
    kernel reclaims before it would OOM-kill anyone."""
    big = tmp_path / "big.bin"
    size = 64 * MIB
    with big.open("wb") as handle:
        handle.write(os.urandom(MIB) * 64)
        handle.flush()
        os.fsync(handle.fileno())
        # Drop it from the cache so the child's read charges the pages to the child's cgroup.
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    before = cgroup_stats.read_stats(cgroup)
    proc = child(
        cgroup,
        f"import sys\nwith open({str(big)!r}, 'rb') as f:\n"
        "    while f.read(1 << 20): pass\nprint('read', flush=True); sys.stdin.read()",
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "read"
    during = cgroup_stats.read_stats(cgroup)
    assert finish(proc) == 0
    usage_growth = during.memory_usage_bytes - before.memory_usage_bytes
    working_set_growth = during.memory_working_set_bytes - before.memory_working_set_bytes
    if usage_growth < size // 2:
        pytest.skip(f"the file's pages were not charged to the cgroup (+{usage_growth} B)")
    assert during.memory_cache_bytes >= size // 2
    assert working_set_growth < usage_growth / 2, (usage_growth, working_set_growth)


def test_going_over_the_memory_limit_is_an_oom_kill(cgroup: cgroups.Cgroup) -> None:
    before = cgroup_stats.read_stats(cgroup)
    proc = child(cgroup, allocating(256, "survived"))
    assert proc.stdout is not None
    assert proc.stdout.readline() == ""  # killed before it could print
    assert proc.wait(timeout=30) == -9
    after = cgroup_stats.read_stats(cgroup)
    assert after.oom_kills == before.oom_kills + 1


def test_remove_kills_what_is_left_then_removes_the_directories() -> None:
    run_id = f"unit-{uuid.uuid4().hex[:8]}"
    group = cgroups.create_cgroup(run_id, "leftover")
    if not group.enforced:
        pytest.skip(f"cgroups not writable here: {group.reason}")
    proc = child(group, WAIT)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    cgroup_removal.remove_cgroup(group)
    cgroup_removal.remove_run(run_id)
    # The child waits on a stdin nobody closes, so it cannot end by itself. remove_cgroup
    # reaps the children it kills (a zombie stays in cgroup.procs), so when it reaps first,
    # Popen finds no status to collect and reports 0; otherwise Popen sees the SIGKILL.
    assert proc.wait(timeout=10) in (-9, 0)
    assert not any(d.exists() for d in group.dirs.values())
    assert not any(d.parent.exists() for d in group.dirs.values())


def test_clean_stale_removes_empty_cgroups_of_dead_runs_only(cgroup: cgroups.Cgroup) -> None:
    stale_run = f"unit-stale-{uuid.uuid4().hex[:8]}"
    stale = cgroups.create_cgroup(stale_run, "ghost")
    assert stale.enforced
    proc = child(cgroup, WAIT)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    sweep = "unit-stale-"
    swept = cgroup_removal.clean_stale(prefix=sweep)
    assert stale.relpath not in swept, "a starting run's was removed"
    removed = cgroup_removal.clean_stale(min_age_s=0, prefix="unit-")
    assert stale.relpath in removed
    assert not any(d.exists() for d in stale.dirs.values())
    assert all(d.exists() for d in cgroup.dirs.values()), "a live run's cgroup was removed"
    assert finish(proc) == 0


def test_exporter_publishes_cadvisor_names_with_the_service_label(
    cgroup: cgroups.Cgroup,
) -> None:
    proc = child(cgroup, WAIT)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    text = generate_latest(cgroup_exporter.build_registry([cgroup])).decode()
    assert finish(proc) == 0
    for metric in (
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_memory_rss",
        "container_memory_usage_bytes",
        "container_cpu_cfs_periods_total",
        "container_cpu_cfs_throttled_periods_total",
        "container_oom_events_total",
    ):
        assert f'{metric}{{name="probe"}}' in text, metric
    assert 'container_spec_memory_limit_bytes{name="probe"} 1.34217728e+08' in text
    assert 'container_spec_cpu_quota{name="probe"} 50000.0' in text
    assert 'container_spec_cpu_period{name="probe"} 100000.0' in text
