"""A tiny cAdvisor for the local backend: each service's cgroup published under cAdvisor's names.

Under Docker, cAdvisor reads every container's cgroup and Prometheus scrapes it. Locally there
is no container runtime, so this exporter reads the services' cgroups itself and publishes the
same metric names with the same meanings (label `name` = service name), and one set of PromQL
queries serves both backends.

    python -m helpers.serving.local.exporter --port 9400 \\
        --cgroup go-api-onnx=onnx-study/run-1/go-api-onnx [--cgroup NAME=PATH ...]
    python -m helpers.serving.local.exporter --port 9400 --config cgroups.json   # {"name": "path"}

PATH is relative to the hierarchy roots (v1: the same path under each controller mount).
Values are read at scrape time — no background polling, no stale cache.

`--pid NAME=PID` is the fallback when cgroups could not be created (limits not enforced): CPU
and memory of that one process (psutil), so the plots still have lines; the spec (limit)
and CFS metrics are then absent, as the limits are.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import psutil
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from helpers.serving.local import cgroup_stats, cgroups

JOB = "cgroup-exporter"  # its Prometheus job and process name, in both backends


class CgroupCollector(Collector):
    """Reads every cgroup at each scrape and yields cAdvisor-named families.

    A cgroup that disappears (service stopped, run torn down) is skipped, not an error, so a
    last scrape during teardown does not break the exporter.
    """

    def __init__(
        self, groups: Iterable[cgroups.Cgroup], pids: dict[str, int] | None = None
    ) -> None:
        self.groups = [g for g in groups if g.enforced]
        self.pids = dict(pids or {})

    def collect(self) -> Iterator[Metric]:
        labels = ["name"]
        cpu = CounterMetricFamily(
            "container_cpu_usage_seconds_total", "Cumulative cpu time consumed (s).", labels=labels
        )
        periods = CounterMetricFamily(
            "container_cpu_cfs_periods_total",
            "Number of elapsed enforcement period intervals.",
            labels=labels,
        )
        throttled = CounterMetricFamily(
            "container_cpu_cfs_throttled_periods_total",
            "Number of throttled period intervals.",
            labels=labels,
        )
        throttled_s = CounterMetricFamily(
            "container_cpu_cfs_throttled_seconds_total",
            "Total time duration the container has been throttled (s).",
            labels=labels,
        )
        working_set = GaugeMetricFamily(
            "container_memory_working_set_bytes",
            "Current working set (usage - inactive file) in bytes.",
            labels=labels,
        )
        rss = GaugeMetricFamily("container_memory_rss", "Size of RSS in bytes.", labels=labels)
        usage = GaugeMetricFamily(
            "container_memory_usage_bytes",
            "Current memory usage in bytes, including all memory regardless of when it was "
            "accessed (page cache included).",
            labels=labels,
        )
        cache = GaugeMetricFamily(
            "container_memory_cache", "Number of bytes of page cache memory.", labels=labels
        )
        oom = CounterMetricFamily(
            "container_oom_events_total",
            "Count of out of memory events observed for the container.",
            labels=labels,
        )
        memory_limit = GaugeMetricFamily(
            "container_spec_memory_limit_bytes", "Memory limit for the container.", labels=labels
        )
        quota = GaugeMetricFamily(
            "container_spec_cpu_quota", "CPU quota of the container (us).", labels=labels
        )
        period = GaugeMetricFamily(
            "container_spec_cpu_period", "CPU period of the container (us).", labels=labels
        )
        for group in self.groups:
            try:
                stats = cgroup_stats.read_stats(group)
                limits = cgroup_stats.read_limits(group)
            except (OSError, ValueError, cgroups.CgroupError):
                continue
            value = [group.name]
            cpu.add_metric(value, stats.cpu_usage_seconds)
            periods.add_metric(value, stats.cfs_periods)
            throttled.add_metric(value, stats.cfs_throttled_periods)
            throttled_s.add_metric(value, stats.cfs_throttled_seconds)
            working_set.add_metric(value, stats.memory_working_set_bytes)
            rss.add_metric(value, stats.memory_rss_bytes)
            usage.add_metric(value, stats.memory_usage_bytes)
            cache.add_metric(value, stats.memory_cache_bytes)
            oom.add_metric(value, stats.oom_kills)
            # cAdvisor publishes 0 for "no memory limit" and omits the quota when there is none.
            memory_limit.add_metric(value, limits.memory_limit_bytes or 0)
            if limits.cpu_quota_us is not None:
                quota.add_metric(value, limits.cpu_quota_us)
            period.add_metric(value, limits.cpu_period_us)
        for name, pid in self.pids.items():
            reading = process_reading(pid)
            if reading is None:
                continue
            cpu_seconds, rss_bytes = reading
            cpu.add_metric([name], cpu_seconds)
            # No cgroup, no page-cache accounting: the process' RSS is the best stand-in.
            working_set.add_metric([name], rss_bytes)
            rss.add_metric([name], rss_bytes)
            usage.add_metric([name], rss_bytes)
        yield from (cpu, periods, throttled, throttled_s, working_set, rss, usage, cache, oom)
        yield from (memory_limit, quota, period)


def process_reading(pid: int) -> tuple[float, int] | None:
    """(user+system CPU seconds, RSS bytes) of one process; None once it is gone."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            times, rss = process.cpu_times(), process.memory_info().rss
    except psutil.Error:
        return None
    return times.user + times.system, rss


def command(host: str, port: int, groups: dict[str, cgroups.Cgroup], pids: dict[str, int]):
    """The exporter's command line: a cgroup per member, or its pid where cgroups are off."""
    argv = [sys.executable, "-m", "helpers.serving.local.exporter", "--host", host]
    argv += ["--port", str(port)]
    for name, group in groups.items():
        if group.enforced:
            argv += ["--cgroup", f"{name}={group.relpath}"]
        else:
            argv += ["--pid", f"{name}={pids[name]}"]
    return argv


def build_registry(
    groups: Iterable[cgroups.Cgroup], pids: dict[str, int] | None = None
) -> CollectorRegistry:
    """A registry with only the cgroup collector: no exporter-process metrics to confuse queries."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CgroupCollector(groups, pids))
    return registry


def _parse_pairs(option: str, pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{option} expects NAME=VALUE, got {pair!r}")
        mapping[name] = value
    return mapping


def parse_cgroup_args(pairs: list[str], config: Path | None) -> dict[str, str]:
    """NAME=PATH pairs and/or a JSON object {name: path} → {name: path}."""
    mapping: dict[str, str] = {}
    if config is not None:
        loaded = json.loads(config.read_text())
        if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
            raise ValueError(f"{config}: expected a JSON object {{name: cgroup path}}")
        mapping.update(loaded)
    mapping.update(_parse_pairs("--cgroup", pairs))
    return mapping


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--cgroup", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--config", type=Path, help="JSON object {name: cgroup path}")
    parser.add_argument("--pid", action="append", default=[], metavar="NAME=PID")
    args = parser.parse_args(argv)
    try:
        mapping = parse_cgroup_args(args.cgroup, args.config)
        pids = {name: int(pid) for name, pid in _parse_pairs("--pid", args.pid).items()}
        if not mapping and not pids:
            raise ValueError("nothing to export: pass --cgroup NAME=PATH, --config FILE or --pid")
        layout = cgroups.detect_layout()
        if mapping and layout is None:
            raise ValueError("no cgroup hierarchy with the cpu and memory controllers is mounted")
    except (ValueError, OSError) as error:
        print(f"cgroup_exporter: {error}", file=sys.stderr)
        return 2
    groups = [cgroups.open_cgroup(name, path, layout) for name, path in mapping.items()]
    registry = build_registry(groups, pids)
    server, thread = start_http_server(args.port, addr=args.host, registry=registry)
    print(
        f"cgroup_exporter: serving {', '.join([*mapping, *pids])} on "
        f"http://{args.host}:{args.port}/metrics",
        flush=True,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
