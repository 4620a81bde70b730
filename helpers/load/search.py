"""Capacity: per instance, the highest constant rate that meets the objective — searched for
all instances at once, a step of each in turn, so a drift of the machine falls on all of them.

A search starts with a pilot step at a light rate. Every step that meets the objective
predicts where the quota runs out from its CPU per request (at light load a request also pays
for wake-ups, so the prediction is low, and gets better as the load grows): the next rate is
that prediction — at least `GROWTH` times the last, at most `MAX_GROWTH` times — until a step
misses the objective; then it bisects until the bracket is within `precision`. Each step is
held until stable (helpers.load.stepping) and judged with its p95's 95 % interval.

The capacity is the highest rate whose step met the objective on its values; its 95 %
interval runs from the highest rate that met it with its interval's bound (a confident pass)
to the lowest rate that missed it confidently (or the bracket's top when none did). A failing
rate at which the service had quota left was not the service's limit: that capacity is said
as "≥ X (generator-bound)", never X. `Search` is pure (rates in, verdicts out), so its
decisions are tested on recorded steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from helpers.intervals import Estimate
from helpers.load.stepping import Step

GROWTH, MAX_GROWTH = 1.3, 4.0  # per step up to the first miss, around the prediction
PREDICTION_SHARE = 0.95  # of the saturation the last passing step predicts


@dataclass
class Search:
    """One instance's search: ask `next_rate()`, run that step, give it to `record()`."""

    target: str
    cpu_limit: float | None  # cores; None: no quota (the prediction uses one core)
    pilot_rate: int = 50
    max_rate: int = 20000
    precision: float = 0.05
    steps: list[Step] = field(default_factory=list)
    low: int | None = None  # highest rate that met the objective on its values
    high: int | None = None  # lowest rate that missed it
    done: bool = False
    why_done: str = ""

    def next_rate(self) -> int | None:
        """The next rate to step at, or None when the search is over."""
        if self.done:
            return None
        if not self.steps:
            return self.pilot_rate
        if self.high is None:  # still growing
            assert self.low is not None
            predicted = round(PREDICTION_SHARE * self._predicted())
            rate = min(max(predicted, round(GROWTH * self.low)), round(MAX_GROWTH * self.low))
            if rate > self.max_rate:
                return self._finish("search limit")
            return rate
        if self.low is None:
            return self._finish("none passed")
        if (self.high - self.low) / self.low <= self.precision:
            return self._finish("bracketed")
        return (self.low + self.high) // 2

    def _predicted(self) -> float:
        """Where the quota runs out at the CPU per request of the highest passing step."""
        passed = [s for s in self.steps if s.rate == self.low]
        cpu_us = passed[-1].cpu_us_per_request().value if passed else math.nan
        cores = self.cpu_limit or 1.0
        return cores * 1e6 / cpu_us if cpu_us and math.isfinite(cpu_us) else 2.0 * (self.low or 1)

    def _finish(self, why: str) -> None:
        self.done, self.why_done = True, why
        return None

    def record(self, step: Step) -> None:
        self.steps.append(step)
        if step.point_passed():
            self.low = max(self.low or 0, step.rate)
        else:
            self.high = step.rate if self.high is None else min(self.high, step.rate)
        if self.low is None and self.high is not None and self.high <= self.pilot_rate:
            self._finish("none passed")

    def stop(self, why: str) -> None:
        """The time budget is spent: what was bracketed so far is the answer."""
        if not self.done:
            self._finish(why)

    # -- the answer ------------------------------------------------------------------------

    def bound(self) -> str:
        """What limited the figure: 'service', 'generator', 'search limit', 'time budget',
        'none passed'."""
        if self.low is None:
            return "none passed"
        if self.high is None:
            return "search limit" if self.why_done == "search limit" else "time budget"
        if (self.high - self.low) / self.low > self.precision:
            return "time budget"
        failing = [s for s in self.steps if s.rate == self.high]
        return "service" if failing[-1].service_bound(self.cpu_limit) else "generator"

    def capacity(self) -> Estimate:
        """The capacity in req/s with its 95 % interval (see the module's docstring)."""
        if self.low is None:
            return Estimate(math.nan, math.nan, math.nan, len(self.steps), "steps")
        confident_pass = [s.rate for s in self.steps if s.verdict() == "pass"]
        confident_fail = [s.rate for s in self.steps if s.verdict() == "fail" and s.rate > self.low]
        low = max((r for r in confident_pass if r <= self.low), default=0)
        high = min(confident_fail, default=self.high if self.high is not None else math.inf)
        return Estimate(self.low, low, high, len(self.steps), "steps")

    def at_capacity(self) -> Step | None:
        """The step at the capacity rate (the last, if it was stepped at more than once)."""
        steps = [s for s in self.steps if s.rate == self.low]
        return steps[-1] if steps else None

    def display(self) -> str:
        """The capacity as it may be said: a bound where it is one."""
        bound = self.bound()
        if self.low is None:
            first = min((s.rate for s in self.steps), default=None)
            return f"< {first} (none passed)" if first else "not measured"
        if bound == "service":
            return f"{self.low:,}"
        return f"≥ {self.low:,} ({bound}-bound)"

    def as_record(self) -> dict[str, Any]:
        at = self.at_capacity()
        return {
            "target": self.target,
            "rate_rps": self.low,
            "display": self.display(),
            "bound": self.bound(),
            "interval": self.capacity().record(),
            "cpu_limit": self.cpu_limit,
            "at_capacity": at.record() if at else None,
            "steps": [s.record() for s in self.steps],
        }


def run_interleaved(
    searches: list[Search],
    step: Callable[[Search, int], Step],
    deadline: Callable[[], bool],
    progress: Callable[[str], None] = print,
) -> list[Search]:
    """Every search a step in turn until all are done or `deadline()` says time is up."""
    while not all(s.done for s in searches):
        for search in searches:
            if deadline():
                for s in searches:
                    s.stop("time budget")
                return searches
            rate = search.next_rate()
            if rate is None:
                continue
            taken = step(search, rate)
            search.record(taken)
            progress(taken.describe())
    return searches
