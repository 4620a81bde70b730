"""Which generator measured what: vegeta and k6 on the same instance, at the same traffic.

The capacity steps are sent by vegeta because k6 spends more CPU per request here than the Go
service itself: at Go's capacity k6 would need more than the machine's spare core, and its
figure would be its own. That choice must not change the service's figures, so at one rate
each service reaches with both, with the same requests in flight (`CONNECTIONS`), windows of
the two generators alternate (a paired comparison, helpers.load.interleave's logic): the
service's CPU per request under each, and each generator's own CPU per request.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from helpers import files, intervals, paths
from helpers.load import k6, windows
from helpers.load.windows import Window

CONNECTIONS = 10  # the same traffic from both: at most 10 requests in flight
MAX_RATE = 800  # k6 needs about a core at this rate here: both generators reach it
K6_SCRIPT = paths.K6_DIR / "capacity.js"


def k6_window(
    stack: Any,
    target: str,
    rate: int,
    window_s: float,
    ranges: dict[str, Any],
    out_dir: Path,
    round_: int,
) -> Window:
    """One window sent by k6 (constant arrival rate, CONNECTIONS VUs), read like vegeta's."""
    env = k6.environment(
        stack,
        f"crosscheck-{target}-{round_}",
        {target: stack.load_target_urls[target]},
        ranges,
        RATE=str(rate),
        DURATION_S=f"{max(window_s, 1.0):g}",  # k6 runs a scenario for 1 s at least
        MAX_VUS=str(CONNECTIONS),
        PRE_ALLOCATED_VUS=str(CONNECTIONS),
        TIMEOUT_S=f"{windows.TIMEOUT_S:g}",
    )
    before = stack.usage(target)
    reaped_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = k6.run(
        stack, K6_SCRIPT, env, out_dir / f"{target}-{round_}", window_s, target, progress=False
    )
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = stack.usage(target)
    # k6 as a local process is reaped by this process: the kernel's account of it is exact and
    # counts its start-up as vegeta's does. (As a container it is not ours to reap: then the
    # samples taken while it ran, which miss its last moments.)
    exact = (reaped.ru_utime + reaped.ru_stime) - (reaped_before.ru_utime + reaped_before.ru_stime)
    summary = run.summary()["metrics"]
    requests = int(summary.get("http_reqs", {}).get("count", 0))
    failed = float(summary.get("http_req_failed", {}).get("value", 0.0))
    latency = summary.get("http_req_duration", {})
    return Window(
        target=target,
        label="k6",
        rate=rate,
        batch=1,
        round=round_,
        started_at=run.started_at,
        ended_at=run.ended_at,
        planned_s=window_s,
        requests=requests,
        ok=round(requests * (1 - failed)),
        p50_ms=float(latency.get("p(50)", math.nan)),
        p95_ms=float(latency.get("p(95)", math.nan)),
        p99_ms=float(latency.get("p(99)", math.nan)),
        max_ms=float(latency.get("max", math.nan)),
        cpu_s=after.cpu_usage_seconds - before.cpu_usage_seconds,
        periods=after.cfs_periods - before.cfs_periods,
        throttled=after.cfs_throttled_periods - before.cfs_throttled_periods,
        working_set_bytes=float(after.memory_working_set_bytes),
        oom_kills=after.oom_kills,
        generator_cpu_s=exact if exact > 0 else (run.cpu_seconds or math.nan),
        cpu_counter_at_start=before.cpu_usage_seconds,
    )


def crosscheck(
    stack: Any,
    rates: Mapping[str, int],
    ranges: dict[str, Any],
    out_dir: Path,
    window_s: float,
    rounds: int,
    progress: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """Per instance: vegeta and k6 windows alternated `rounds` times; the service's and each
    generator's CPU per request, and the paired difference of the service's."""
    log = windows.WindowLog(out_dir / "windows.jsonl")
    section = {}
    for target, wanted in rates.items():
        rate = min(wanted, MAX_RATE)
        targets = windows.targets_file(
            stack.load_target_urls[target], ranges, out_dir / "targets" / f"{target}.json"
        )
        pairs: list[tuple[Window, Window]] = []
        for round_ in range(rounds):
            pair = _pair(stack, target, rate, window_s, targets, ranges, out_dir, round_)
            for window in pair:
                log.append(window, comparison=f"generators-{target}")
            pairs.append(pair)
            by_vegeta_w, by_k6_w = pair
            progress(
                f"generators {target} round {round_ + 1}: service "
                f"{by_vegeta_w.cpu_us_per_request:.0f} µs/req under vegeta, "
                f"{by_k6_w.cpu_us_per_request:.0f} under k6"
            )
        section[target] = _record(rate, pairs)
    files.write_json(out_dir / "crosscheck.json", section)
    return section


def _pair(
    stack: Any,
    target: str,
    rate: int,
    window_s: float,
    targets: Path,
    ranges: dict[str, Any],
    out_dir: Path,
    round_: int,
) -> tuple[Window, Window]:
    """(vegeta's window, k6's), who goes first alternating: neither always follows the other."""

    def by_vegeta() -> Window:
        return windows.measure(
            stack, target, rate, window_s, targets, "vegeta", round_, connections=CONNECTIONS
        )

    def by_k6() -> Window:
        return k6_window(stack, target, rate, window_s, ranges, out_dir, round_)

    if round_ % 2 == 0:
        first = by_vegeta()
        return first, by_k6()
    first = by_k6()
    return by_vegeta(), first


def _record(rate: int, pairs: list[tuple[Window, Window]]) -> dict[str, Any]:
    def series(which: int, cpu: Callable[[Window], float]) -> tuple[list[float], list[float]]:
        return [cpu(p[which]) for p in pairs], [float(p[which].ok) for p in pairs]

    service = lambda w: w.cpu_s  # noqa: E731
    generator = lambda w: w.generator_cpu_s  # noqa: E731
    return {
        "rate_rps": rate,
        "rounds": len(pairs),
        "service_cpu_us_per_request": {
            name: intervals.ratio_of_sums(*series(i, service), "rounds").scaled(1e6).record()
            for i, name in enumerate(("vegeta", "k6"))
        },
        "generator_cpu_us_per_request": {
            name: intervals.ratio_of_sums(*series(i, generator), "rounds").scaled(1e6).record()
            for i, name in enumerate(("vegeta", "k6"))
        },
        "service_change_under_k6": intervals.paired_change(
            series(0, service), series(1, service)
        ).record(),
        "p95_ms": {
            name: intervals.mean([p[i].p95_ms for p in pairs], "rounds").record()
            for i, name in enumerate(("vegeta", "k6"))
        },
        "measured_at": time.time(),
    }
