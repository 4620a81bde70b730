"""Capacity search: per service, the highest constant arrival rate that holds the objective.

Objective (ARCHITECTURE.md, "Load profiles"): p95 ≤ 25 ms, errors < 0.1 %, dropped iterations
< 1 %, under the stack's limits (0.5 CPU / 128 MiB). Each step is one short k6 run of
k6/capacity.js at a constant rate against one service; a rate passes only if every repeat
passes, because near the CPU quota results are not monotonic (a lucky 10 s can pass a rate that
the next 10 s fails). The search doubles the rate until a step fails, then bisects.

The generator is measured too. k6 spends about as much CPU per request as a FastAPI handler, so
on a small host it can run out of CPU before a fast service does. A failed step whose service
was using clearly less than its CPU quota was not limited by the service: the capacity is then
reported as "≥ X (generator-bound)", never as X.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from helpers import paths
from helpers.analysis import metrics, queries
from helpers.load import k6, loadtest
from helpers.serving.stack import Stack

SCRIPT = paths.K6_DIR / "capacity.js"
P95_MS, ERROR_RATE, DROPPED_RATIO = 25.0, 0.001, 0.01
SERVICE_BOUND_CPU_SHARE = 0.85  # a failing service that used < 85 % of its quota wasn't the limit


@dataclass(frozen=True)
class Step:
    service: str
    rate: int  # requests per second offered
    repeat: int
    requests: int
    p95_ms: float
    error_rate: float
    dropped_ratio: float
    generator_cpu_cores: float  # the k6 process's CPU over the step
    generator_cpu_ms_per_request: float
    service_cpu_cores: float  # from the cgroup, via Prometheus
    passed: bool
    reason: str


@dataclass
class ServiceCapacity:
    service: str
    capacity_rps: int | None  # highest rate that passed every repeat
    bound: str  # "service" | "generator" | "search limit" | "time budget" | "none passed"
    steps: list[Step] = field(default_factory=list)

    @property
    def display(self) -> str:
        if self.capacity_rps is None:
            return f"< {min(s.rate for s in self.steps)} (none passed)" if self.steps else "n/a"
        if self.bound == "service":
            return f"{self.capacity_rps}"
        return f"≥ {self.capacity_rps} ({self.bound}-bound)"


def judge(p95_ms: float, error_rate: float, dropped_ratio: float) -> tuple[bool, str]:
    """Pass/fail of one step against the objective, with the reasons it failed."""
    reasons = []
    if not p95_ms <= P95_MS:
        reasons.append(f"p95 {p95_ms:.1f} ms > {P95_MS:g}")
    if not error_rate < ERROR_RATE:
        reasons.append(f"errors {error_rate:.2%} ≥ {ERROR_RATE:.1%}")
    if not dropped_ratio < DROPPED_RATIO:
        reasons.append(f"dropped {dropped_ratio:.1%} ≥ {DROPPED_RATIO:.0%}")
    return not reasons, "; ".join(reasons) or "ok"


def run_step(
    stack: Stack,
    service: str,
    rate: int,
    repeat: int,
    duration_s: float,
    ranges: dict[str, Any],
    out_dir: Path,
) -> Step:
    """One constant-rate k6 run against `service`; bounded by duration + k6's graceful stop."""
    env = k6.environment(
        stack,
        f"capacity-{service}-{rate}-{repeat}",
        {service: stack.load_target_urls[service]},
        ranges,
        RATE=str(rate),
        DURATION_S=f"{duration_s:g}",
        MAX_VUS=str(max(50, min(1000, rate // 4))),
        TIMEOUT_S="2",
    )
    step_dir = out_dir / service / f"{rate:05d}rps-{repeat}"
    result = k6.run(stack, SCRIPT, env, step_dir, duration_s, service, progress=False)
    summary = result.summary()["metrics"]
    requests = int(summary.get("http_reqs", {}).get("count", 0))
    dropped = int(summary.get("dropped_iterations", {}).get("count", 0))  # absent when none
    planned = rate * duration_s
    p95 = float(summary.get("http_req_duration", {}).get("p(95)", math.nan))
    errors = float(summary.get("http_req_failed", {}).get("value", 1.0 if not requests else 0.0))
    started, ended = result.started_at, result.ended_at
    promql = queries.render(
        "cpu_cores_mean",
        table="totals",
        services=queries.services_regex([service]),
        range=f"{max(1, round(ended - started))}s",
    )
    service_cpu = metrics.query_instant(stack.prometheus_url, promql, ended).get(service, math.nan)
    elapsed = max(ended - started, 1e-9)
    cpu_s = result.cpu_seconds if result.cpu_seconds is not None else math.nan
    passed, reason = judge(p95, errors, dropped / planned if planned else 1.0)
    return Step(
        service=service,
        rate=rate,
        repeat=repeat,
        requests=requests,
        p95_ms=p95,
        error_rate=errors,
        dropped_ratio=dropped / planned if planned else math.nan,
        generator_cpu_cores=cpu_s / elapsed,
        generator_cpu_ms_per_request=cpu_s * 1000 / requests if requests else math.nan,
        service_cpu_cores=service_cpu,
        passed=passed,
        reason=reason,
    )


def _service_was_limit(step: Step, cpu_limit: float | None) -> bool:
    if cpu_limit is None or not math.isfinite(step.service_cpu_cores):
        return True  # cannot tell: do not claim generator-bound without evidence
    return step.service_cpu_cores >= SERVICE_BOUND_CPU_SHARE * cpu_limit


def search(
    stack: Stack,
    service: str,
    ranges: dict[str, Any],
    out_dir: Path,
    budget_s: float,
    start_rate: int = 50,
    max_rate: int = 6400,
    repeats: int = 2,
    step_s: float = 8.0,
    precision: float = 0.1,
) -> ServiceCapacity:
    """Double from `start_rate` until a rate fails, then bisect to `precision` (relative)."""
    deadline = time.monotonic() + budget_s
    limit = stack.limits.get(service)
    cpu_limit = limit.cpu_cores if limit is not None and limit.enforced else None
    result = ServiceCapacity(service, None, "none passed")
    failing: list[Step] = []

    def holds(rate: int) -> bool:
        for repeat in range(repeats):
            step = run_step(stack, service, rate, repeat, step_s, ranges, out_dir)
            result.steps.append(step)
            print(
                f"    {service:<16} {rate:>5} req/s #{repeat + 1}: p95 {step.p95_ms:6.1f} ms, "
                f"service {step.service_cpu_cores:.2f} cores, k6 {step.generator_cpu_cores:.2f}"
                f" cores → {'pass' if step.passed else 'FAIL: ' + step.reason}",
                flush=True,
            )
            if not step.passed:
                failing.append(step)
                return False
        return True

    low: int | None = None
    high: int | None = None
    rate = start_rate
    while rate <= max_rate and time.monotonic() < deadline:
        if holds(rate):
            low, rate = rate, rate * 2
        else:
            high = rate
            break
    while (
        low is not None
        and high is not None
        and (high - low) / low > precision
        and time.monotonic() < deadline
    ):
        middle = (low + high) // 2
        if holds(middle):
            low = middle
        else:
            high = middle
    result.capacity_rps = low
    if low is None:
        result.bound = "none passed"
    elif high is None:
        result.bound = "search limit" if rate > max_rate else "time budget"
    elif (high - low) / low > precision:
        result.bound = "time budget"
    else:
        last_fail = [s for s in failing if s.rate == high][-1]
        result.bound = "service" if _service_was_limit(last_fail, cpu_limit) else "generator"
    return result


def table(results: list[ServiceCapacity]) -> pd.DataFrame:
    """One row per service: capacity (as displayed), the bound, generator CPU per request."""
    rows = []
    for r in results:
        steps = pd.DataFrame([asdict(s) for s in r.steps]) if r.steps else pd.DataFrame()
        at_capacity = steps[steps["rate"] == r.capacity_rps] if not steps.empty else steps
        rows.append(
            {
                "service": r.service,
                "capacity [req/s]": r.display,
                "bound": r.bound,
                "p95 at capacity [ms]": at_capacity["p95_ms"].max() if len(at_capacity) else None,
                "service CPU at capacity [cores]": at_capacity["service_cpu_cores"].mean()
                if len(at_capacity)
                else None,
                "k6 CPU [ms/req]": steps["generator_cpu_ms_per_request"].median()
                if len(steps)
                else None,
                "k6 CPU peak [cores]": steps["generator_cpu_cores"].max() if len(steps) else None,
                "steps": len(r.steps),
            }
        )
    return pd.DataFrame(rows).set_index("service")


def ratios(results: list[ServiceCapacity]) -> dict[str, str]:
    """go/py-onnx and py-onnx/py-pkl; a ratio with a generator-bound side is a lower bound."""
    by_name = {r.service: r for r in results}

    def ratio(top: str, bottom: str) -> str:
        a, b = by_name.get(top), by_name.get(bottom)
        if not a or not b or not a.capacity_rps or not b.capacity_rps:
            return "n/a"
        value = a.capacity_rps / b.capacity_rps
        if a.bound != "service" and b.bound == "service":
            return f"≥ {value:.1f}×"
        if a.bound == "service" and b.bound != "service":
            return f"≤ {value:.1f}×"
        if a.bound != "service":
            return f"~{value:.1f}× (both lower bounds)"
        return f"{value:.1f}×"

    return {
        "go-api-onnx / python-api-onnx": ratio("go-api-onnx", "python-api-onnx"),
        "python-api-onnx / python-api-pkl": ratio("python-api-onnx", "python-api-pkl"),
    }


def run(
    stack: Stack,
    out_dir: Path,
    budget_s: float = 13 * 60,
    **search_options: Any,
) -> list[ServiceCapacity]:
    """Search every service of the stack in turn, sharing `budget_s` equally; writes
    capacity.json (all steps) to `out_dir`."""
    ranges = loadtest.served_manifest(stack.run_dir)["feature_ranges"]
    services = list(stack.load_target_urls)
    deadline = time.monotonic() + budget_s
    results = []
    for index, service in enumerate(services):
        # Time a fast service did not use is handed on to the next ones.
        share = (deadline - time.monotonic()) / (len(services) - index)
        results.append(search(stack, service, ranges, out_dir, share, **search_options))
        print(f"  {service:<16} {results[-1].display}   ({index + 1}/{len(services)})", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "objective": {"p95_ms": P95_MS, "error_rate": ERROR_RATE, "dropped": DROPPED_RATIO},
        "results": [{**asdict(r), "display": r.display} for r in results],
        "ratios": ratios(results),
    }
    text = json.dumps(record, indent=2, default=str).replace("NaN", "null")
    (out_dir / "capacity.json").write_text(text + "\n")
    return results


def bench_section(args: Any) -> None:
    """`make bench` section: start a limited local stack, search every service, print the
    table and the ratios. The whole section stays within BENCH_BUDGET_S plus start/stop."""
    from datetime import UTC, datetime

    from helpers.serving.stack import start_stack

    run_dir = paths.RESULTS_DIR / f"bench-capacity-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    artifacts_dir = Path(args.artifacts_dir).resolve()
    with start_stack("local", run_dir=run_dir, artifacts_dir=artifacts_dir) as stack:
        if not stack.limits_enforced:
            print("  WARNING: limits NOT enforced — capacities are not under the 0.5 CPU budget")
        results = run(stack, run_dir / "capacity", budget_s=BENCH_BUDGET_S)
    print(table(results).to_string(float_format=lambda v: f"{v:.3g}"))
    for name, value in ratios(results).items():
        print(f"  {name}: {value}")
    print(f"  steps and k6 logs: {run_dir / 'capacity'}")


BENCH_BUDGET_S = 13 * 60  # + stack start/stop: the bench section stays under 15 minutes
