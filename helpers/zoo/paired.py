"""A zoo comparison's figures from its windows alone: CPU per request, and each model against
logistic regression, paired within rounds.

helpers.load.interleave counts an arm's CPU over its window and a tail of a few seconds
after it, for costs paid after the requests (spans and pushed metrics exported later). The
zoo's stack runs without telemetry, so nothing is paid later — and at the low rate every model
is served at, a few seconds of an idle process (a Python service's event loop ticks) would be
counted as if the window's few requests had cost it, pulling every model towards logistic
regression. So here the figures are the windows' own CPU over their answers; the rounds, their
pairing and the intervals are the comparison's (helpers.intervals over rounds).
"""

from __future__ import annotations

from helpers import intervals
from helpers.intervals import Estimate
from helpers.load.interleave import Comparison


def series(comparison: Comparison, label: str) -> tuple[list[float], list[float]]:
    """(CPU seconds of the window, requests answered) of one arm, a value per complete round."""
    rounds = comparison.complete_rounds()
    return [r[label].cpu_s for r in rounds], [float(r[label].ok) for r in rounds]


def cpu_us_per_request(comparison: Comparison, label: str) -> Estimate:
    return intervals.ratio_of_sums(*series(comparison, label), "rounds").scaled(1e6)


def change(comparison: Comparison, label: str) -> Estimate:
    """The arm's CPU per request relative to the reference's (the first arm): 0.12 = 12 %
    more, paired within rounds."""
    reference = comparison.arms[0].label
    return intervals.paired_change(series(comparison, reference), series(comparison, label))


def multiple(comparison: Comparison, label: str) -> Estimate:
    return change(comparison, label).mapped(lambda relative: relative + 1.0)


def p95_ms(comparison: Comparison, label: str) -> Estimate:
    return intervals.mean([r[label].p95_ms for r in comparison.complete_rounds()], "rounds")


def _largest(estimate: Estimate) -> float:
    return max(abs(estimate.low), abs(estimate.high))


def verdict(comparison: Comparison, label: str, min_effect: float) -> str:
    """'effect' (the interval excludes zero), 'none' (it lies within ±min_effect) or
    'undecided' — over at least intervals.MIN_SAMPLES rounds; fewer cannot decide."""
    found = change(comparison, label)
    if found.samples < intervals.MIN_SAMPLES or not found.finite:
        return "undecided"
    if found.excludes(0.0):
        return "effect"
    return "none" if _largest(found) <= min_effect else "undecided"


def sentence(comparison: Comparison, label: str, min_effect: float) -> str:
    """The change in words, an interval only where there are rounds enough for one."""
    found = change(comparison, label)
    judged = verdict(comparison, label, min_effect)
    if judged == "none":
        return f"no effect larger than ±{_largest(found):.0%}"
    if judged == "effect":
        return f"{found.value:+.0%} (95 %: {found.low:+.0%} to {found.high:+.0%})"
    return found.text("{:+.0%}") if found.repeated else f"{found.value:+.0%} (not repeated)"
