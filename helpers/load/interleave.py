"""Paired comparisons: instances that differ in one setting, loaded in alternating windows.

Near a CPU quota results drift over minutes, so two configurations measured one after the
other cannot be told apart by less than the drift. Here the arms of a comparison run side by
side on one stack — each its own instance under identical limits — and traffic alternates
between them in short windows (A B C A B C …, the order rotated every round so no arm always
follows the same one). Each round holds one window of every arm, so an effect is a paired
difference within rounds, bootstrapped over rounds (helpers.intervals.paired_change): the
drift that hits a round hits all its arms and cancels.

An arm's CPU per request counts its window and a fixed `TAIL_S` after it, while it sits idle
and the other arms are measured, because some costs are paid after the requests: spans and
pushed metrics are exported every few seconds. Counting the window alone would call those
settings free; counting until the arm's next window would make background costs depend on
how many arms there are. (An arm whose next window comes sooner has its tail cut there.) A
comparison without telemetry pays nothing later, and at a low rate an idle process's ticks
would weigh on its few requests: it sets `tail_s=0` and counts its windows alone.

Rounds repeat until every arm's effect on CPU per request is settled — its 95 % interval
excludes zero, or lies within ±`min_effect` — or `max_rounds` or the time budget run out;
`verdict` then says which. Several comparisons (one per service, say) take their rounds in
turn, so none of them sits in a quiet or a busy stretch of the machine alone.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from helpers import intervals
from helpers.intervals import Estimate
from helpers.load import windows
from helpers.load.windows import Window
from helpers.sizing import Windows

TAIL_S = 5.0  # spans (every 3–5 s) and pushed metrics (every 3 s) are exported within it


@dataclass(frozen=True)
class Arm:
    target: str  # the stack's instance
    label: str  # what differs, in words ("tuned", "access_log=published")


@dataclass
class Comparison:
    """Arms of one service at one rate; `arms[0]` is the reference the others are held to."""

    name: str
    arms: list[Arm]
    rate: int
    batch: int = 1
    rounds: list[dict[str, Window]] = field(default_factory=list)  # label → its window
    tail_s: float = TAIL_S  # 0: the window's own CPU only

    def complete_rounds(self) -> list[dict[str, Window]]:
        """Rounds with every arm's window and its tail read."""
        return [
            r
            for r in self.rounds
            if all(a.label in r and math.isfinite(r[a.label].cpu_with_tail_s) for a in self.arms)
        ]

    def series(self, label: str) -> tuple[list[float], list[float]]:
        """(CPU seconds of the window and its tail, requests answered) of one arm, a value
        per complete round."""
        rounds = self.complete_rounds()
        return [r[label].cpu_with_tail_s for r in rounds], [float(r[label].ok) for r in rounds]

    def cpu_us_per_request(self, label: str) -> Estimate:
        cpu, ok = self.series(label)
        return intervals.ratio_of_sums(cpu, ok, "rounds").scaled(1e6)

    def p95_ms(self, label: str) -> Estimate:
        return intervals.mean([r[label].p95_ms for r in self.complete_rounds()], "rounds")

    def change(self, label: str, reference: str | None = None) -> Estimate:
        """The arm's CPU per request relative to `reference`'s (default the first arm's):
        0.12 = 12 % more."""
        base = reference or self.arms[0].label
        return intervals.paired_change(self.series(base), self.series(label))

    def multiple(self, label: str, reference: str) -> Estimate:
        """The arm's CPU per request as a multiple of `reference`'s (a service over its no-op
        floor, say), paired within rounds."""
        return self.change(label, reference).mapped(lambda change: change + 1.0)

    def metric_change(self, label: str, metric: str, reference: str | None = None) -> Estimate:
        """Mean paired difference of a window figure (p95_ms, p99_ms, working_set_bytes …)."""
        rounds = self.complete_rounds()
        base = [_figure(r[reference or self.arms[0].label], metric) for r in rounds]
        return intervals.paired_difference(base, [_figure(r[label], metric) for r in rounds])

    def settled(self, label: str, min_effect: float) -> bool:
        change = self.change(label)
        return change.samples >= intervals.MIN_SAMPLES and (
            change.excludes(0.0) or _largest(change) <= min_effect
        )

    def all_settled(self, min_effect: float) -> bool:
        return all(self.settled(a.label, min_effect) for a in self.arms[1:])

    def verdict(self, label: str, min_effect: float) -> str:
        """'effect' (interval excludes zero), 'none' (interval within ±min_effect), or
        'undecided' (neither, when the rounds or the budget ran out)."""
        change = self.change(label)
        if change.samples < intervals.MIN_SAMPLES:
            return "undecided"  # two rounds give a range, not a 95 % interval
        if change.excludes(0.0):
            return "effect"
        if _largest(change) <= min_effect:
            return "none"
        return "undecided"

    def sentence(self, label: str, min_effect: float) -> str:
        """The arm's effect in words: an interval that excludes zero, or the largest effect
        the interval leaves room for."""
        change = self.change(label)
        if not change.repeated:
            return f"{change.value:+.0%} (not repeated)"
        if change.samples < intervals.MIN_SAMPLES:
            ends = f"{change.low:+.0%} to {change.high:+.0%}"
            return f"{change.value:+.0%} (range of {change.samples} rounds: {ends})"
        if change.excludes(0.0):
            return f"{change.value:+.0%} (95 %: {change.low:+.0%} to {change.high:+.0%})"
        return f"no effect larger than ±{_largest(change):.0%}"

    def record(self, min_effect: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "rate": self.rate,
            "batch": self.batch,
            "reference": self.arms[0].label,
            "rounds": len(self.complete_rounds()),
            "arms": {
                a.label: {
                    "target": a.target,
                    "cpu_us_per_request": self.cpu_us_per_request(a.label).record(),
                    "p95_ms": self.p95_ms(a.label).record(),
                    **(
                        {}
                        if a is self.arms[0]
                        else {
                            "change": self.change(a.label).record(),
                            "verdict": self.verdict(a.label, min_effect),
                            "sentence": self.sentence(a.label, min_effect),
                        }
                    ),
                }
                for a in self.arms
            },
        }


def _figure(window: Window, metric: str) -> float:
    value = getattr(window, metric)
    return float(value) if value is not None else math.nan


def _largest(change: Estimate) -> float:
    return max(abs(change.low), abs(change.high)) if change.finite else math.inf


def rotated(arms: list[Arm], round_: int) -> list[Arm]:
    shift = round_ % len(arms)
    return arms[shift:] + arms[:shift]


def run(
    stack: Any,
    comparisons: list[Comparison],
    targets: Callable[[Comparison, Arm], Path],
    window_s: float,
    min_rounds: int,
    max_rounds: int,
    min_effect: float,
    budget_s: float,
    log: windows.WindowLog | None = None,
    progress: Callable[[str], None] = print,
) -> list[Comparison]:
    """Rounds of every unsettled comparison in turn, until all are settled or out of rounds
    or time. `targets(comparison, arm)` gives the vegeta targets file of an arm."""
    deadline = time.monotonic() + budget_s
    tails = Tails(stack, log)
    try:
        _rounds(
            stack,
            comparisons,
            targets,
            window_s,
            min_rounds,
            max_rounds,
            min_effect,
            deadline,
            tails,
            progress,
        )
    finally:
        tails.flush()
    return comparisons


def run_sized(
    stack: Any,
    comparisons: list[Comparison],
    target_of: Callable[[str], Path],
    size: Windows,
    budget_s: float,
    log: windows.WindowLog | None = None,
    progress: Callable[[str], None] = print,
) -> list[Comparison]:
    """`run` with a profile's window sizes (helpers.sizing.Windows) and one targets file per
    instance."""
    return run(
        stack, comparisons, lambda comparison, arm: target_of(arm.target), size.window_s,
        size.min_rounds, size.max_rounds, size.min_effect, budget_s, log, progress,
    )  # fmt: skip


def _rounds(stack, comparisons, targets, window_s, min_rounds, max_rounds, min_effect,
            deadline, tails, progress) -> None:  # fmt: skip
    for round_ in range(max_rounds):
        active = [
            c
            for c in comparisons
            if len(c.complete_rounds()) < min_rounds or not c.all_settled(min_effect)
        ]
        if not active:
            break
        for comparison in active:
            if time.monotonic() > deadline:
                progress(f"time budget spent after {round_} round(s)")
                return
            taken: dict[str, Window] = {}
            for arm in rotated(comparison.arms, round_):
                tails.cut(arm.target)  # the arm's previous tail ends where this window begins
                window = windows.measure(
                    stack,
                    arm.target,
                    comparison.rate,
                    window_s,
                    targets(comparison, arm),
                    label=arm.label,
                    round_=round_,
                    batch=comparison.batch,
                )
                taken[arm.label] = window
                if comparison.tail_s > 0:
                    tails.follow(window, taken, arm.label, comparison.name, comparison.tail_s)
                else:
                    taken[arm.label] = replace(window, cpu_with_tail_s=window.cpu_s, tail_s=0.0)
                    if tails.log is not None:
                        tails.log.append(taken[arm.label], comparison=comparison.name)
            comparison.rounds.append(taken)
            unsettled = [
                a.label for a in comparison.arms[1:] if not comparison.settled(a.label, min_effect)
            ]
            progress(
                f"{comparison.name:<18} round {round_ + 1}: "
                + (f"{len(unsettled)} arm(s) unsettled" if unsettled else "settled")
            )


class Tails:
    """Reads each window's CPU counter `TAIL_S` after it ends (a timer per window), or when
    its instance's next window starts, whichever is first; the window is logged then. The
    last round's tails are read after as long as that arm's earlier tails lasted, so every
    round of an arm counts the same stretch of idle time."""

    def __init__(self, stack: Any, log: windows.WindowLog | None) -> None:
        self.stack, self.log = stack, log
        self.pending: dict[str, tuple[threading.Timer, Callable[[], None], Window]] = {}
        self.lengths: dict[str, list[float]] = {}  # target → its tails so far
        self.lock = threading.Lock()

    def follow(
        self, window: Window, into: dict[str, Window], label: str, name: str, tail_s: float
    ) -> None:
        def read() -> None:
            with self.lock:
                if self.pending.get(window.target, (None,))[0] is not timer:
                    return  # already read (cut), or superseded
                del self.pending[window.target]
            counter = self.stack.usage(window.target).cpu_usage_seconds
            tail = max(0.0, time.time() - window.ended_at)
            self.lengths.setdefault(window.target, []).append(tail)
            done = replace(
                window, cpu_with_tail_s=counter - window.cpu_counter_at_start, tail_s=tail
            )
            into[label] = done
            if self.log is not None:
                self.log.append(done, comparison=name)

        timer = threading.Timer(tail_s, read)
        timer.daemon = True
        with self.lock:
            self.pending[window.target] = (timer, read, window)
        timer.start()

    def cut(self, target: str) -> None:
        with self.lock:
            entry = self.pending.get(target)
        if entry is not None:
            entry[0].cancel()
            entry[1]()

    def flush(self) -> None:
        """Read the open tails when they are as long as their arm's earlier ones (TAIL_S if
        there were none): the last round counts too, and like the others."""
        with self.lock:
            entries = list(self.pending.items())
        for target, (_, _, window) in sorted(entries, key=lambda e: e[1][2].ended_at):
            earlier = self.lengths.get(target)
            length = statistics.median(earlier) if earlier else TAIL_S
            wait = window.ended_at + length - time.time()
            if wait > 0:
                time.sleep(wait)  # the tail is measured time, not a wait for readiness
            self.cut(target)


def from_log(rows: list[dict[str, Any]], comparison: Comparison) -> Comparison:
    """A comparison re-made from its logged windows (the run folder re-analysed later)."""
    rounds: dict[int, dict[str, Window]] = {}
    for row in rows:
        if row.get("comparison") == comparison.name:
            rounds.setdefault(row["round"], {})[row["label"]] = windows.window_of(row)
    comparison.rounds = [rounds[k] for k in sorted(rounds)]
    return comparison
