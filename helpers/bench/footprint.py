"""`make bench`, services section: what each service costs at rest and per request, under limits.

Two numbers per service, measured on the real local stack (each service in its 0.5 CPU /
128 MiB cgroup):
- idle memory after start-up and a short warm-up: the process RSS (psutil) and the cgroup
  working set (what cAdvisor and the memory panel report);
- CPU time per 1000 sequential requests: the cgroup's CPU usage delta (cpuacct / cpu.stat)
  over 1000 `POST /predict` sent one after another on one keep-alive connection. Sequential
  on purpose: this is the cost of a request, not throughput; the limit is never reached.

Prometheus keeps scraping every service once per second meanwhile; that cost lands in the
same cgroup (as it does under Docker), so it is measured separately ("scrape CPU/s", over a
window with no requests) and printed next to it rather than silently included or dropped.

    python -m helpers.bench.footprint [--requests 1000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from helpers import paths
from helpers.net import free_port
from helpers.serving.local import cgroup_stats
from helpers.serving.local.stack import LocalStack, start_local_stack
from helpers.serving.protocol import gomaxprocs_from_log
from helpers.serving.services import SERVICE_NAMES

MIB = 1024 * 1024
WARMUP_REQUESTS = 50
IDLE_WINDOW_S = 5.0  # a measurement window, not a readiness wait


@dataclass(frozen=True)
class ServiceCost:
    name: str
    idle_rss_bytes: int
    idle_working_set_bytes: int
    cpu_seconds_per_1000: float
    idle_cpu_seconds_per_s: float  # background: scrapes, timers
    gomaxprocs: int | None = None


def _instances(count: int) -> list[dict[str, float]]:
    """Random iris-like inputs, seeded, so every service gets the same requests."""
    rng = random.Random(42)
    return [
        {
            "sepal_length": round(rng.uniform(4.3, 7.9), 1),
            "sepal_width": round(rng.uniform(2.0, 4.4), 1),
            "petal_length": round(rng.uniform(1.0, 6.9), 1),
            "petal_width": round(rng.uniform(0.1, 2.5), 1),
        }
        for _ in range(count)
    ]


def measure(
    running: LocalStack, requests: int = 1000, idle_window_s: float = IDLE_WINDOW_S
) -> list[ServiceCost]:
    """Measure each service of a running local stack, one after another."""
    if not running.limits_enforced:
        raise RuntimeError(
            f"cgroups are not enforced ({running.limits_note}): no cgroup to read CPU from"
        )
    bodies = _instances(requests)
    results: list[ServiceCost] = []
    for name in running.specs:
        group = running.cgroups[name]
        pid = running.processes[name].pid
        with httpx.Client(base_url=running.service_urls[name], timeout=30.0) as client:
            for body in bodies[:WARMUP_REQUESTS]:
                client.post("/predict", json=body).raise_for_status()
            idle_start = cgroup_stats.read_stats(group)
            started = time.monotonic()
            time.sleep(idle_window_s)
            idle_end = cgroup_stats.read_stats(group)
            idle_rate = (idle_end.cpu_usage_seconds - idle_start.cpu_usage_seconds) / (
                time.monotonic() - started
            )
            idle_rss = psutil.Process(pid).memory_info().rss
            before = cgroup_stats.read_stats(group)
            for body in bodies:
                client.post("/predict", json=body).raise_for_status()
            after = cgroup_stats.read_stats(group)
        per_1000 = (after.cpu_usage_seconds - before.cpu_usage_seconds) * 1000 / requests
        gomaxprocs = None
        if name == "go-api-onnx":
            log = running.processes[name].log_path.read_text(errors="replace")
            gomaxprocs = gomaxprocs_from_log(log)
        results.append(
            ServiceCost(
                name=name,
                idle_rss_bytes=idle_rss,
                idle_working_set_bytes=idle_end.memory_working_set_bytes,
                cpu_seconds_per_1000=per_1000,
                idle_cpu_seconds_per_s=idle_rate,
                gomaxprocs=gomaxprocs,
            )
        )
    return results


def format_table(results: list[ServiceCost], requests: int) -> str:
    """Side by side, with ratios against the Go service (the cheapest way, if the post holds)."""
    base = next((r for r in results if r.name == "go-api-onnx"), results[0])
    lines = [
        f"  {'service':<16} {'idle RSS':>10} {'idle WSS':>10} {'×go':>6} "
        f"{'CPU/1000 req':>13} {'×go':>6} {'scrape CPU/s':>13}",
    ]
    for r in results:
        memory_ratio = r.idle_working_set_bytes / base.idle_working_set_bytes
        cpu_ratio = r.cpu_seconds_per_1000 / base.cpu_seconds_per_1000
        rss_mib, wss_mib = r.idle_rss_bytes / MIB, r.idle_working_set_bytes / MIB
        cpu_ms = r.cpu_seconds_per_1000 * 1000
        lines.append(
            f"  {r.name:<16} {rss_mib:>6.1f} MiB {wss_mib:>6.1f} MiB {memory_ratio:>5.1f}×"
            f" {cpu_ms:>10.0f} ms {cpu_ratio:>5.1f}× {r.idle_cpu_seconds_per_s * 1000:>10.1f} ms"
        )
    lines.append(
        f"  ({requests} sequential POST /predict per service, one keep-alive connection; CPU from "
        "the cgroup, which also pays for Prometheus' 1 s scrapes — see the last column)"
    )
    gomaxprocs = next((r.gomaxprocs for r in results if r.gomaxprocs is not None), None)
    if gomaxprocs is not None:
        lines.append(f"  GOMAXPROCS chosen by the Go runtime under its 0.5-CPU quota: {gomaxprocs}")
    return "\n".join(lines)


def run(
    artifacts_dir: Path = paths.ARTIFACTS_DIR,
    requests: int = 1000,
    run_dir: Path | None = None,
) -> list[ServiceCost]:
    """Start a local stack on free ports, measure, print the table, tear it down."""
    ports = {"prometheus": free_port()}
    for name in SERVICE_NAMES:
        port = free_port()
        while port in ports.values():
            port = free_port()
        ports[name] = port
    with tempfile.TemporaryDirectory(prefix="bench-services-") as scratch:
        target = run_dir or Path(scratch) / "bench-services"
        with start_local_stack(run_dir=target, artifacts_dir=artifacts_dir, ports=ports) as running:
            results = measure(running, requests=requests)
    print(format_table(results, requests))
    return results


def section(args: argparse.Namespace) -> None:
    """The `make bench` entry (helpers.bench.driver.SECTIONS)."""
    run(artifacts_dir=args.artifacts_dir)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--artifacts-dir", type=Path, default=paths.ARTIFACTS_DIR)
    cli = parser.parse_args()
    run(cli.artifacts_dir, cli.requests)
