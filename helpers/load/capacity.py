"""Capacity: per service, the highest constant arrival rate that holds the objective.

Objective (docs/measuring.md): p95 ≤ 25 ms, errors < 0.1 %, requests not sent on time < 1 %,
under the stack's limits (0.5 CPU / 128 MiB). Each probe is `repeats` steps
(helpers.load.steps) at one rate against one service; a rate passes only if every repeat
passes, because near the CPU quota results are not monotonic (a lucky 8 s can pass a rate the
next 8 s fails). The search doubles the rate until a probe fails, then bisects to `precision`.

The generator is never the limit by assumption: every step records its CPU next to the
service's. When the failing rate's steps show a service below 85 % of its CPU quota, the
service was not what failed — the capacity is reported as "≥ X (generator-bound)", never X.
`decide` is the pure part (what the probes say), so it is tested on recorded steps.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.load import steps
from helpers.load.steps import Step
from helpers.serving.protocol import Stack, feature_ranges

Probe = Callable[[int], list[Step]]  # rate -> its steps (stops at the first failing repeat)


@dataclass
class ServiceCapacity:
    service: str
    capacity_rps: int | None  # highest rate that passed every repeat
    bound: str  # "service" | "generator" | "search limit" | "time budget" | "none passed"
    failed_rps: int | None = None  # lowest rate that failed (the bracket's top)
    steps: list[Step] = field(default_factory=list)

    @property
    def display(self) -> str:
        if self.capacity_rps is None:
            return f"< {min(s.rate for s in self.steps)} (none passed)" if self.steps else "n/a"
        if self.bound == "service":
            return f"{self.capacity_rps}"
        return f"≥ {self.capacity_rps} ({self.bound}-bound)"

    @property
    def resolution(self) -> float:
        """Relative width of the bracket [capacity, failed): how precisely it is known."""
        if not self.capacity_rps or not self.failed_rps:
            return math.nan
        return (self.failed_rps - self.capacity_rps) / self.capacity_rps

    def at_capacity(self) -> list[Step]:
        return [s for s in self.steps if s.rate == self.capacity_rps]

    def cpu_us_per_request(self) -> tuple[float, float]:
        """Service CPU per request at capacity: (median over repeats, spread = range/median)."""
        values = [s.service_cpu_us_per_request for s in self.at_capacity()]
        values = [v for v in values if math.isfinite(v)]
        if not values:
            return math.nan, math.nan
        middle = statistics.median(values)
        return middle, (max(values) - min(values)) / middle if middle else math.nan


def decide(
    probe: Probe,
    service: str,
    cpu_limit: float | None,
    start_rate: int,
    max_rate: int,
    precision: float,
    deadline: float,
) -> ServiceCapacity:
    """Double from `start_rate` until a probe fails, then bisect to `precision` (relative)."""
    result = ServiceCapacity(service, None, "none passed")

    def holds(rate: int) -> bool:
        probed = probe(rate)
        result.steps += probed
        return bool(probed) and all(s.passed for s in probed)

    low: int | None = None
    high: int | None = None
    rate = start_rate
    while rate <= max_rate and time.monotonic() < deadline:
        if holds(rate):
            low, rate = rate, rate * 2
        else:
            high = rate
            break
    while low and high and (high - low) / low > precision and time.monotonic() < deadline:
        middle = (low + high) // 2
        if holds(middle):
            low = middle
        else:
            high = middle
    result.capacity_rps, result.failed_rps = low, high
    if low is None:
        result.bound = "none passed"
    elif high is None:
        result.bound = "search limit" if rate > max_rate else "time budget"
    elif (high - low) / low > precision:
        result.bound = "time budget"
    else:
        failing = [s for s in result.steps if s.rate == high and not s.passed]
        result.bound = "service" if failing[-1].service_bound(cpu_limit) else "generator"
    return result


def search(
    stack: Stack,
    service: str,
    out_dir: Path,
    budget_s: float,
    start_rate: int = 50,
    max_rate: int = 12800,
    repeats: int = 2,
    step_s: float = 8.0,
    precision: float = 0.1,
    generator: str = "vegeta",
) -> ServiceCapacity:
    """The capacity of one service of a running stack, with every step it took."""
    ranges = feature_ranges(stack.run_dir)
    limit = stack.limits.get(service)
    cpu_limit = limit.cpu_cores if limit is not None and limit.enforced else None

    def probe(rate: int) -> list[Step]:
        probed = []
        for repeat in range(repeats):
            step = steps.measure(
                stack, service, rate, step_s, ranges, out_dir, repeat, generator=generator
            )
            probed.append(step)
            print(describe(step), flush=True)
            if not step.passed:
                break
        return probed

    deadline = time.monotonic() + budget_s
    return decide(probe, service, cpu_limit, start_rate, max_rate, precision, deadline)


def describe(step: Step) -> str:
    """One line per step, for the terminal of a long search."""
    verdict = "pass" if step.passed else "FAIL: " + step.reason
    return (
        f"    {step.service:<16} {step.rate:>5} req/s #{step.repeat + 1} ({step.generator}): "
        f"p95 {step.p95_ms:6.1f} ms, service {step.service_cpu_cores:.2f} cores "
        f"({step.service_cpu_us_per_request:.0f} µs/req), {step.generator} "
        f"{step.generator_cpu_cores:.2f} cores → {verdict}"
    )


def run(
    stack: Stack, out_dir: Path, budget_s: float = 13 * 60, **search_options: Any
) -> list[ServiceCapacity]:
    """Search every service of the stack in turn, sharing `budget_s`; writes capacity.json."""
    services = list(stack.load_target_urls)
    deadline = time.monotonic() + budget_s
    results = []
    for index, service in enumerate(services):
        # Time a fast service did not use is handed on to the next ones.
        share = (deadline - time.monotonic()) / (len(services) - index)
        results.append(search(stack, service, out_dir, share, **search_options))
        print(f"  {service:<16} {results[-1].display}   ({index + 1}/{len(services)})", flush=True)
    save(results, out_dir / "capacity.json")
    return results


def save(results: list[ServiceCapacity], path: Path) -> Path:
    record = {
        "objective": {"p95_ms": steps.P95_MS, "error_rate": steps.ERROR_RATE,
                      "behind": steps.BEHIND_RATIO},
        "results": [{**asdict(r), "display": r.display} for r in results],
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=_plain) + "\n")
    return path


def load(path: Path) -> list[ServiceCapacity]:
    """capacity.json back into results (steps included)."""
    record = json.loads(Path(path).read_text())
    results = []
    for raw in record["results"]:
        raw.pop("display", None)
        raw["steps"] = [Step(**_unplain(s)) for s in raw["steps"]]
        results.append(ServiceCapacity(**raw))
    return results


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _unplain(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: (math.nan if v is None and k not in ("reason",) else v) for k, v in raw.items()}


def record(results: list[ServiceCapacity]) -> dict[str, dict[str, Any]]:
    """summary.json's capacity section: per service the rate, the bound, and what both sides
    spent at that rate."""
    section = {}
    for r in results:
        cpu, spread = r.cpu_us_per_request()
        at = r.at_capacity()
        section[r.service] = {
            "rate_rps": r.capacity_rps,
            "display": r.display,
            "bound": r.bound,
            "bracket": _plain(r.resolution),
            "service_cpu_us_per_request": _plain(cpu),
            "spread": _plain(spread),
            "generator": at[0].generator if at else None,
            "generator_cpu_cores": _plain(
                max((s.generator_cpu_cores for s in at), default=math.nan)
            ),
            "generator_cpu_us_per_request": _plain(
                _mean(s.generator_cpu_us_per_request for s in at)
            ),
        }
    return section


def table(results: list[ServiceCapacity]) -> pd.DataFrame:
    """One row per service: capacity as it may be said, the bound, and what both sides spent."""
    rows = []
    for r in results:
        at = r.at_capacity()
        cpu, spread = r.cpu_us_per_request()
        rows.append(
            {
                "service": r.service,
                "capacity [req/s]": r.display,
                "bound": r.bound,
                "bracket [%]": round(100 * r.resolution, 1),
                "p95 at capacity [ms]": max((s.p95_ms for s in at), default=math.nan),
                "service CPU at capacity [cores]": _mean(s.service_cpu_cores for s in at),
                "service CPU [µs/req]": cpu,
                "spread over repeats [%]": round(100 * spread, 1),
                "generator CPU [µs/req]": _mean(s.generator_cpu_us_per_request for s in at),
                "generator CPU [cores]": max((s.generator_cpu_cores for s in at), default=math.nan),
                "steps": len(r.steps),
            }
        )
    return (
        pd.DataFrame(rows)
        .set_index("service")
        .round(
            {
                "p95 at capacity [ms]": 1,
                "service CPU at capacity [cores]": 2,
                "service CPU [µs/req]": 0,
                "generator CPU [µs/req]": 0,
                "generator CPU [cores]": 2,
            }
        )
    )


def _mean(values) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


def half_capacity(result: ServiceCapacity) -> int:
    """The ladder's and the cross-check's rate: high, yet with room (half the capacity)."""
    return max(10, round((result.capacity_rps or 20) / 2))


def ratio(results: list[ServiceCapacity], top: str, bottom: str) -> str:
    """top/bottom capacity as it may be said: a generator-bound side makes it a bound."""
    by_name = {r.service: r for r in results}
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
