"""One step: a constant arrival rate against one service, and what it cost both sides.

Every capacity, CPU-per-request and ladder figure of the study is built from steps. A step
sends `rate` requests per second for `duration_s` to one service (vegeta by default, k6 to
cross-check), then reads from the run's Prometheus what the service's cgroup spent over
exactly that window — the raw counter samples at its two ends, no extrapolation — and
records the generator's own CPU next to it. A step judged against the objective says why it
failed, and whether the service was the limit at all (`service_bound`).

Each step's files (targets, vegeta's report or k6's summary) stay in `out_dir`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import net, paths
from helpers.load import k6, vegeta
from helpers.prometheus import client, queries
from helpers.serving.protocol import Stack

CAPACITY_SCRIPT = paths.K6_DIR / "capacity.js"
GENERATORS = ("vegeta", "k6")
P95_MS, ERROR_RATE, BEHIND_RATIO = 25.0, 0.001, 0.01  # the objective (docs/measuring.md)
SERVICE_BOUND_CPU_SHARE = 0.85  # a failing service that used < 85 % of its quota wasn't the limit


@dataclass(frozen=True)
class Step:
    service: str
    generator: str
    rate: int  # requests per second offered
    repeat: int
    duration_s: float
    requests: int
    achieved_rate: float  # requests per second actually sent
    p50_ms: float
    p95_ms: float
    p99_ms: float
    error_rate: float
    behind_ratio: float  # share of the planned requests not sent on time (k6: dropped)
    generator_cpu_cores: float
    generator_cpu_us_per_request: float
    service_cpu_cores: float
    service_cpu_us_per_request: float
    throttled_ratio: float  # share of CFS periods in which the service was throttled
    passed: bool
    reason: str
    started_at: float = math.nan  # unix seconds: the step's window, for other counters after
    ended_at: float = math.nan

    def service_bound(self, cpu_limit: float | None) -> bool:
        """Did the service run out of CPU? (No limit or no reading: assume it did, never claim
        a generator-bound figure without evidence.)"""
        if cpu_limit is None or not math.isfinite(self.service_cpu_cores):
            return True
        return self.service_cpu_cores >= SERVICE_BOUND_CPU_SHARE * cpu_limit


def judge(p95_ms: float, error_rate: float, behind_ratio: float) -> tuple[bool, str]:
    """Pass/fail of one step against the objective, with the reasons it failed."""
    reasons = []
    if not p95_ms <= P95_MS:
        reasons.append(f"p95 {p95_ms:.1f} ms > {P95_MS:g}")
    if not error_rate < ERROR_RATE:
        reasons.append(f"errors {error_rate:.2%} ≥ {ERROR_RATE:.1%}")
    if not behind_ratio < BEHIND_RATIO:
        reasons.append(f"behind {behind_ratio:.1%} ≥ {BEHIND_RATIO:.0%}")
    return not reasons, "; ".join(reasons) or "ok"


def counter_rate(prom_url: str, metric: str, service: str, start: float, end: float) -> float:
    """Per-second increase of a container counter of `service` between `start` and `end`, from
    the raw samples nearest inside the window (waits for the first scrape after `end`)."""
    selector = f'{metric}{{name="{service}"}}'

    def scraped_after_end() -> float | None:
        latest = client.query_instant(prom_url, f"timestamp({selector})", end + 5)
        return latest.get("", None) if latest.get("", 0) >= end else None

    try:
        net.poll(scraped_after_end, 5.0, f"a scrape of {selector} after the step", 0.2)
    except net.NotReady:
        return math.nan
    window_ms = max(1000, round((end - start) * 1000))
    samples = client.query_samples(prom_url, f"{selector}[{window_ms}ms]", end)
    if len(samples) < 2:
        return math.nan
    (t0, v0), (t1, v1) = samples[0], samples[-1]
    return (v1 - v0) / (t1 - t0) if t1 > t0 else math.nan


def measure(
    stack: Stack,
    service: str,
    rate: int,
    duration_s: float,
    ranges: dict[str, Any],
    out_dir: Path,
    repeat: int = 0,
    generator: str = "vegeta",
    connections: int | None = None,
) -> Step:
    """Run one step and read what it cost; bounded by the duration plus the generators' margins.

    `connections` fixes how many requests are in flight at most (vegeta's workers, k6's VUs),
    so two generators present the service the same traffic; None lets each grow as needed."""
    if generator not in GENERATORS:
        raise ValueError(f"generator {generator!r} is unknown; expected one of {GENERATORS}")
    step_dir = out_dir / service / f"{generator}-{rate:05d}rps-{repeat}"
    url = stack.load_target_urls[service]
    if generator == "vegeta":
        targets = vegeta.targets_file(f"{url}/predict", ranges, step_dir / "targets.json")
        started = time.time()
        pool = {"workers": connections, "max_workers": connections} if connections else {}
        sent = vegeta.attack(targets, rate, duration_s, step_dir, **pool)
        ended = started + sent.duration_s
        requests, achieved = sent.requests, sent.rate
        p50, p95, p99 = sent.p50_ms, sent.p95_ms, sent.p99_ms
        errors = 1.0 - sent.success if requests else 1.0
        behind = max(0.0, 1.0 - requests / (rate * duration_s))
        generator_cpu = sent.cpu_seconds
    else:
        env = k6.environment(
            stack,
            f"step-{service}-{rate}-{repeat}",
            {service: url},
            ranges,
            RATE=str(rate),
            DURATION_S=f"{duration_s:g}",
            MAX_VUS=str(connections or max(50, min(1000, rate // 4))),
            PRE_ALLOCATED_VUS=str(connections or ""),
            TIMEOUT_S="2",
        )
        run = k6.run(stack, CAPACITY_SCRIPT, env, step_dir, duration_s, service, progress=False)
        summary = run.summary()["metrics"]
        started, ended = run.started_at, run.ended_at
        requests = int(summary.get("http_reqs", {}).get("count", 0))
        achieved = requests / max(ended - started, 1e-9)
        latency = summary.get("http_req_duration", {})
        p50, p95, p99 = (float(latency.get(k, math.nan)) for k in ("p(50)", "p(95)", "p(99)"))
        errors = float(summary.get("http_req_failed", {}).get("value", 1.0 if not requests else 0))
        behind = int(summary.get("dropped_iterations", {}).get("count", 0)) / (rate * duration_s)
        generator_cpu = run.cpu_seconds
    prom = stack.prometheus_url
    cpu = counter_rate(prom, "container_cpu_usage_seconds_total", service, started, ended)
    periods = counter_rate(prom, "container_cpu_cfs_periods_total", service, started, ended)
    throttled = counter_rate(
        prom, "container_cpu_cfs_throttled_periods_total", service, started, ended
    )
    elapsed = max(ended - started, 1e-9)
    generator_cpu = math.nan if generator_cpu is None else generator_cpu
    passed, reason = judge(p95, errors, behind)
    return Step(
        service=service,
        generator=generator,
        rate=rate,
        repeat=repeat,
        duration_s=duration_s,
        requests=requests,
        achieved_rate=achieved,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        error_rate=errors,
        behind_ratio=behind,
        generator_cpu_cores=generator_cpu / elapsed,
        generator_cpu_us_per_request=generator_cpu * 1e6 / requests if requests else math.nan,
        service_cpu_cores=cpu,
        service_cpu_us_per_request=cpu * elapsed * 1e6 / requests if requests else math.nan,
        throttled_ratio=throttled / periods if periods else (0.0 if periods == 0 else math.nan),
        passed=passed,
        reason=reason,
        started_at=started,
        ended_at=ended,
    )


# What the service's own side says about a step's window, from the run's Prometheus:
# server-side percentiles of its histogram and the peaks of its memory (queries.TOTALS).
SERVER_FIGURES = {
    "server_p95_ms": ("server_latency_p95_seconds", 1000.0),
    "server_p99_ms": ("server_latency_p99_seconds", 1000.0),
    "memory_working_set_peak_bytes": ("memory_working_set_peak_bytes", 1.0),
    "memory_usage_peak_bytes": ("memory_usage_peak_bytes", 1.0),
}
COUNTED_SHARE = 0.99  # of the step's requests the server's histogram must hold to be settled


def server_settled(
    prom_url: str, service: str, start: float, requests: int, timeout_s: float
) -> tuple[float, bool]:
    """Wait until the service's histogram in Prometheus counts the step's requests; returns
    (when, whether it got there). Scraped, that is a second; pushed through the collector, up
    to the export interval plus the collector's batch and a scrape. Waiting for it also leaves
    the next step a clean start: nothing of this one arrives after it began."""
    promql = queries.render(
        "server_requests_total", table="counters", services=queries.services_regex([service])
    )

    def counted_at(at: float) -> float:
        return client.query_instant(prom_url, promql, at).get(service, 0.0)

    before = counted_at(start - 0.5)

    def settled() -> float | None:
        now = time.time()
        return now if counted_at(now) - before >= COUNTED_SHARE * requests else None

    try:
        return net.poll(settled, timeout_s, f"{service}'s histogram to count the step", 0.5), True
    except net.NotReady:
        return time.time(), False


def server_figures(
    prom_url: str, service: str, start: float, end: float, settled_at: float
) -> dict[str, float]:
    """The server's p95/p99 over a step, and the peaks of its working set and memory usage.

    The histogram is read at `settled_at` (see `server_settled`) over [start - 1 s,
    settled_at]: every request of the step and none of another. Memory comes from the cgroup
    exporter, scraped every second: the step's own window."""
    services = queries.services_regex([service])
    figures = {}
    for key, (name, scale) in SERVER_FIGURES.items():
        if name.startswith("server_"):
            at, seconds = settled_at, settled_at - start + 1.0
        else:
            at, seconds = end, end - start
        window = f"{max(1, math.ceil(seconds))}s"
        promql = queries.render(name, table="totals", services=services, range=window)
        figures[key] = client.query_instant(prom_url, promql, at).get(service, math.nan) * scale
    return figures
