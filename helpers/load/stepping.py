"""A step: one instance at one constant rate, held until it is stable, judged with intervals.

A step is a run of windows (helpers.load.windows) at one rate. It ends when its last
`STABLE_WINDOWS` windows agree — throughput and p95 within `STABILITY` of their mean, the rule
of Triton's perf_analyzer (its default, 10 %), with a floor of `LATENCY_FLOOR_MS` (a tenth of
the objective: p95s closer than that cannot move a verdict, and at light load a second's p95
moves more than 10 % by scheduling jitter alone) — or after `max_windows`, or at once when two
windows in a row miss the objective by far (nothing is learnt by loading a service that is
already drowning). The first window is a warm-up and is not judged when there are others.

The objective (p95 ≤ 25 ms, errors < 0.1 %, fewer than 1 % of requests behind) is judged
with the p95's 95 % interval over the windows: a step *passes* when the interval's upper end
meets the objective, *fails* when its lower end misses it (or errors or lag do), and is
*undecided* otherwise. `point_passed` judges the value alone: the capacity search brackets on
it, and reports the confident verdicts as the capacity's interval.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import intervals
from helpers.intervals import Estimate
from helpers.load import windows
from helpers.load.windows import Window

P95_MS, ERROR_RATE, BEHIND_RATIO = 25.0, 0.001, 0.01  # the study's objective
STABILITY = 0.10
STABLE_WINDOWS = 3
LATENCY_FLOOR_MS = 2.5
DROWNING = 4.0  # a window with p95 this many times the objective, or half its requests failed
SERVICE_BOUND_CPU_SHARE = 0.85  # a failing service below 85 % of its quota was not the limit


@dataclass
class Step:
    target: str
    rate: int
    batch: int = 1
    windows: list[Window] = field(default_factory=list)
    stable: bool = False

    @property
    def judged(self) -> list[Window]:
        """The windows the verdict uses: all but the warm-up when there are others."""
        return self.windows[1:] if len(self.windows) > 1 else list(self.windows)

    def p95_ms(self) -> Estimate:
        return intervals.mean([w.p95_ms for w in self.judged])

    def cpu_us_per_request(self) -> Estimate:
        judged = self.judged
        return intervals.ratio_of_sums([w.cpu_s for w in judged], [w.ok for w in judged]).scaled(
            1e6
        )

    def working_set_bytes(self) -> Estimate:
        return intervals.mean([w.working_set_bytes for w in self.judged])

    def error_rate(self) -> float:
        sent = sum(w.requests for w in self.judged)
        return 1.0 - sum(w.ok for w in self.judged) / sent if sent else 1.0

    def behind(self) -> float:
        planned = sum(w.rate * w.planned_s for w in self.judged)
        return max(0.0, 1.0 - sum(w.ok for w in self.judged) / planned) if planned else 1.0

    def service_cores(self) -> float:
        judged = self.judged
        return sum(w.cpu_s for w in judged) / sum(w.elapsed_s for w in judged) if judged else 0.0

    def generator_cores(self) -> float:
        judged = self.judged
        total = sum(w.elapsed_s for w in judged)
        return sum(w.generator_cpu_s for w in judged) / total if judged else 0.0

    def misses(self) -> list[str]:
        """What the step's point values miss of the objective (empty: they meet it)."""
        said = []
        p95 = self.p95_ms().value
        if not p95 <= P95_MS:
            said.append(f"p95 {p95:.1f} ms > {P95_MS:g}")
        if not self.error_rate() < ERROR_RATE:
            said.append(f"errors {self.error_rate():.2%}")
        if not self.behind() < BEHIND_RATIO:
            said.append(f"behind {self.behind():.1%}")
        return said

    def point_passed(self) -> bool:
        return not self.misses()

    def verdict(self) -> str:
        """'pass' | 'fail' | 'undecided', with the p95's 95 % interval."""
        p95 = self.p95_ms()
        if not (self.error_rate() < ERROR_RATE and self.behind() < BEHIND_RATIO):
            return "fail"
        if p95.high <= P95_MS:
            return "pass"
        if p95.low > P95_MS:
            return "fail"
        return "undecided"

    def service_bound(self, cpu_limit: float | None) -> bool:
        """Did the service use its CPU up? (No limit or no reading: assume it did, never claim
        a generator-bound figure without evidence.)"""
        cores = self.service_cores()
        if cpu_limit is None or not math.isfinite(cores):
            return True
        return cores >= SERVICE_BOUND_CPU_SHARE * cpu_limit

    def describe(self) -> str:
        """One terminal line."""
        verdict = self.verdict()
        why = "" if verdict == "pass" else f" ({'; '.join(self.misses()) or 'p95 interval'})"
        return (
            f"{self.target:<24} {self.rate:>6} req/s ×{len(self.windows)} windows"
            f"{'' if self.stable else ' (not stable)'}: p95 {self.p95_ms().value:6.1f} ms, "
            f"{self.cpu_us_per_request().value:6.0f} µs/req, service "
            f"{self.service_cores():.2f} cores, vegeta {self.generator_cores():.2f} → "
            f"{verdict}{why}"
        )

    def record(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "rate": self.rate,
            "batch": self.batch,
            "windows": len(self.windows),
            "stable": self.stable,
            "verdict": self.verdict(),
            "point_passed": self.point_passed(),
            "misses": self.misses(),
            "p95_ms": self.p95_ms().record(),
            "cpu_us_per_request": self.cpu_us_per_request().record(),
            "working_set_bytes": self.working_set_bytes().record(),
            "error_rate": self.error_rate(),
            "behind": self.behind(),
            "service_cores": self.service_cores(),
            "generator_cores": self.generator_cores(),
        }


def within(values: list[float], share: float, floor: float = 0.0) -> bool:
    """Every value within `share` of their mean (or within `floor` of it, if larger)."""
    middle = statistics.fmean(values)
    allowed = max(share * abs(middle), floor)
    return all(abs(v - middle) <= allowed for v in values)


def stable(recent: list[Window]) -> bool:
    """perf_analyzer's rule on the last windows: throughput and p95 agree."""
    if len(recent) < STABLE_WINDOWS:
        return False
    last = recent[-STABLE_WINDOWS:]
    throughput = [w.ok / w.elapsed_s for w in last]
    return within(throughput, STABILITY) and within(
        [w.p95_ms for w in last], STABILITY, LATENCY_FLOOR_MS
    )


def drowning(window: Window) -> bool:
    return window.p95_ms > DROWNING * P95_MS or window.error_rate > 0.5


def run(
    stack: Any,
    target: str,
    rate: int,
    targets: Path,
    window_s: float,
    max_windows: int,
    log: windows.WindowLog | None = None,
    label: str = "",
    batch: int = 1,
    on_window: Callable[[Window], None] | None = None,
) -> Step:
    """Windows at `rate` until stable, drowning, or `max_windows` (at least STABLE_WINDOWS + 1
    when the size allows: a warm-up, then a stable run)."""
    step = Step(target, rate, batch)
    for index in range(max(max_windows, 1)):
        window = windows.measure(
            stack, target, rate, window_s, targets, label=label, round_=index, batch=batch
        )
        step.windows.append(window)
        if log is not None:
            log.append(window, step_rate=rate)
        if on_window is not None:
            on_window(window)
        if len(step.windows) >= 2 and all(drowning(w) for w in step.windows[-2:]):
            break
        if len(step.windows) > STABLE_WINDOWS and stable(step.windows[1:]):
            step.stable = True
            break
    return step
