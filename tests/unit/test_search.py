"""The capacity search and the stability rule, on windows given as data.

A "service" here is a rule from a rate to the windows a real one produced at that rate (its
p95, what it answered, the CPU it used): the search's decisions — where it goes, what it
concludes, which verdicts make its interval, when it must say "≥ X (generator-bound)" — are
checked without a stack, as they would be made on a recorded run.
"""

from __future__ import annotations

import pytest

from helpers.load import search as capacity_search
from helpers.load import stepping
from helpers.load.stepping import Step
from helpers.load.windows import Window

QUOTA = 0.5


def window(rate: int, p95_ms: float, cores: float, index: int = 0, ok_share: float = 1.0):
    ok = round(rate * ok_share)
    return Window(
        target="svc", label="", rate=rate, batch=1, round=index, started_at=float(index),
        ended_at=float(index) + 1.0, planned_s=1.0, requests=rate, ok=ok, p50_ms=p95_ms / 3,
        p95_ms=p95_ms, p99_ms=p95_ms * 1.5, max_ms=p95_ms * 2, cpu_s=cores, periods=10,
        throttled=0, working_set_bytes=50e6, oom_kills=0, generator_cpu_s=0.1,
    )  # fmt: skip


def step(rate: int, p95s: list[float], cores: float, ok_share: float = 1.0) -> Step:
    taken = Step("svc", rate)
    taken.windows = [window(rate, p, cores, i, ok_share) for i, p in enumerate(p95s)]
    return taken


def onnx_like(rate: int) -> Step:
    """Passes comfortably to 600 req/s, near the edge at 700, drowns at 800 (quota used)."""
    cores = min(QUOTA, rate * 700e-6)
    if rate <= 600:
        return step(rate, [3, 3.2, 2.9, 3.1, 3.0], cores)
    if rate <= 700:
        return step(rate, [15, 30, 18, 26, 24], cores)
    return step(rate, [120, 400, 900], QUOTA, ok_share=0.8)


def run(service, search: capacity_search.Search) -> list[int]:
    asked = []
    while (rate := search.next_rate()) is not None:
        asked.append(rate)
        search.record(service(rate))
    return asked


def test_the_pilot_predicts_the_bracket_and_bisection_finds_the_service_bound_capacity():
    search = capacity_search.Search("svc", QUOTA, pilot_rate=50, precision=0.05)
    asked = run(onnx_like, search)
    assert asked[0] == 50
    assert asked[1] == 4 * 50  # the pilot predicts more: growth is capped at 4× a step
    assert asked[2] == round(0.95 * QUOTA / 700e-6)  # then the prediction itself
    assert search.bound() == "service"
    assert 600 <= search.low <= 700 < search.high <= 800
    capacity = search.capacity()
    assert capacity.value == search.low
    assert capacity.low <= 600  # the highest confident pass
    assert capacity.high <= 800  # the lowest confident fail
    assert search.display() == f"{search.low:,}"


def test_an_undecided_step_counts_for_the_value_but_not_for_the_interval():
    search = capacity_search.Search("svc", QUOTA, pilot_rate=50, precision=0.05)
    run(onnx_like, search)
    edge = [s for s in search.steps if 600 < s.rate <= 700]
    assert edge and all(s.verdict() == "undecided" for s in edge if s.point_passed())
    assert search.capacity().low < search.capacity().value or not edge


def test_a_failure_with_quota_left_is_generator_bound():
    def generator_limited(rate: int) -> Step:
        if rate <= 3000:
            return step(rate, [2, 2, 2, 2], rate * 50e-6)
        return step(rate, [80, 90, 95], 0.2, ok_share=0.9)  # the service used 40 % of its quota

    search = capacity_search.Search("svc", QUOTA, pilot_rate=100, precision=0.05)
    run(generator_limited, search)
    assert search.bound() == "generator"
    assert search.display().startswith("≥ ") and "generator-bound" in search.display()


def test_none_passed_and_the_search_limit_are_said_as_such():
    drowning = capacity_search.Search("svc", QUOTA, pilot_rate=50)
    run(lambda rate: step(rate, [300, 400], QUOTA, ok_share=0.5), drowning)
    assert drowning.low is None and drowning.display() == "< 50 (none passed)"

    endless = capacity_search.Search("svc", QUOTA, pilot_rate=50, max_rate=400)
    run(lambda rate: step(rate, [1, 1, 1, 1], rate * 1e-5), endless)
    assert endless.bound() == "search limit" and endless.display().startswith("≥ ")


def test_interleaved_searches_take_turns_and_stop_at_the_deadline():
    searches = [capacity_search.Search(name, QUOTA) for name in ("a", "b", "c")]
    order: list[str] = []

    def take(search, rate):
        order.append(search.target)
        return onnx_like(rate)

    calls = iter(range(100))
    capacity_search.run_interleaved(
        searches, take, deadline=lambda: next(calls) >= 7, progress=lambda _: None
    )
    assert order[:6] == ["a", "b", "c", "a", "b", "c"]
    assert all(s.done for s in searches) and {s.why_done for s in searches} == {"time budget"}


@pytest.mark.parametrize(
    ("p95s", "stable"),
    [([3.0, 3.1, 2.9], True), ([3.0, 5.0, 2.9], True), ([15, 22, 15], False), ([20, 22, 21], True)],
)
def test_the_stability_rule_has_a_latency_floor(p95s, stable):
    # ±10 % of the mean, or ±2.5 ms (a tenth of the objective): 3 vs 5 ms is jitter, 15 vs 22
    # ms is not.
    windows = [window(500, p, 0.3, i) for i, p in enumerate(p95s)]
    assert stepping.stable(windows) is stable


def test_a_step_passes_fails_or_is_undecided_by_its_p95_interval():
    assert step(100, [5, 5, 6, 5, 5], 0.1).verdict() == "pass"
    assert step(100, [40, 60, 50, 45], 0.5).verdict() == "fail"
    assert step(100, [10, 40, 12, 35, 20], 0.5).verdict() == "undecided"
    assert step(100, [5, 5, 5], 0.1, ok_share=0.99).verdict() == "fail"  # 1 % errors
