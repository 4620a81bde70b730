"""The capacity search's decisions and the generator-bound rule, on steps given as data.

The probe below replays steps shaped like a real run's (the rate, the p95 and the CPU the
service and the generator used at each), so the decisions — where the search goes, what it
concludes, and when it must say "≥ X (generator-bound)" — are checked without a stack.
"""

from __future__ import annotations

import math
import time

import pytest

from helpers.load import capacity
from helpers.load.steps import Step, judge

QUOTA = 0.5


def step(rate: int, p95_ms: float, service_cores: float, generator_cores: float = 0.2) -> Step:
    passed, reason = judge(p95_ms, 0.0, 0.0)
    return Step(
        service="svc", generator="vegeta", rate=rate, repeat=0, duration_s=8.0,
        requests=rate * 8, achieved_rate=float(rate), p50_ms=p95_ms / 3, p95_ms=p95_ms,
        p99_ms=p95_ms * 1.5, error_rate=0.0, behind_ratio=0.0,
        generator_cpu_cores=generator_cores,
        generator_cpu_us_per_request=generator_cores * 1e6 / rate,
        service_cpu_cores=service_cores, service_cpu_us_per_request=service_cores * 1e6 / rate,
        throttled_ratio=0.0, passed=passed, reason=reason, started_at=0.0, ended_at=8.0,
    )  # fmt: skip


def replay(recorded: dict[int, Step]):
    asked: list[int] = []

    def probe(rate: int) -> list[Step]:
        asked.append(rate)
        # Between recorded rates the service behaves like the nearest recorded rate above.
        above = min((r for r in recorded if r >= rate), default=max(recorded))
        s = recorded[above]
        return [step(rate, s.p95_ms, s.service_cpu_cores * rate / above, s.generator_cpu_cores)]

    return probe, asked


FOREVER = math.inf


def test_doubling_then_bisection_finds_the_service_bound_capacity():
    # python-api-onnx-like: passes up to ~650 req/s, fails at 800 with the quota used up.
    recorded = {
        50: step(50, 2, 0.03), 100: step(100, 2, 0.05), 200: step(200, 3, 0.1),
        400: step(400, 6, 0.25), 650: step(650, 18, 0.42), 800: step(800, 90, 0.5),
    }  # fmt: skip
    probe, asked = replay(recorded)
    found = capacity.decide(probe, "svc", QUOTA, 50, 12800, 0.1, time.monotonic() + 60)
    assert asked[:5] == [50, 100, 200, 400, 800]  # doubling until the first failure
    assert found.bound == "service"
    assert found.capacity_rps is not None and 600 <= found.capacity_rps < 800
    assert found.failed_rps is not None
    assert found.resolution <= 0.1
    assert found.display == str(found.capacity_rps)


def test_a_failure_with_the_service_below_its_quota_is_generator_bound():
    # Go-like: the generator ran out of room at 3200 req/s while the service used 0.3 cores.
    recorded = {r: step(r, 3, 0.00008 * r) for r in (50, 100, 200, 400, 800, 1600)}
    recorded[3200] = step(3200, 60, 0.3, generator_cores=1.4)
    probe, _ = replay(recorded)
    found = capacity.decide(probe, "svc", QUOTA, 50, 12800, 0.1, time.monotonic() + 60)
    assert found.bound == "generator"
    assert found.display.startswith("≥ ") and found.display.endswith("(generator-bound)")


def test_without_a_known_limit_it_never_claims_generator_bound():
    recorded = {50: step(50, 2, 0.01), 100: step(100, 90, 0.02)}
    probe, _ = replay(recorded)
    found = capacity.decide(probe, "svc", None, 50, 12800, 0.1, time.monotonic() + 60)
    assert found.bound == "service"


def test_no_rate_passing_and_the_search_limit_are_said_as_such():
    probe, _ = replay({50: step(50, 40, 0.5)})
    nothing = capacity.decide(probe, "svc", QUOTA, 50, 12800, 0.1, time.monotonic() + 60)
    assert nothing.capacity_rps is None and nothing.display == "< 50 (none passed)"
    probe, asked = replay({r: step(r, 2, 0.01) for r in (50, 100, 200)})
    capped = capacity.decide(probe, "svc", QUOTA, 50, 200, 0.1, time.monotonic() + 60)
    assert capped.bound == "search limit" and capped.display == "≥ 200 (search limit-bound)"
    assert asked == [50, 100, 200]


def test_a_spent_budget_stops_the_search_and_says_so():
    probe, asked = replay({50: step(50, 2, 0.01)})
    found = capacity.decide(probe, "svc", QUOTA, 50, 12800, 0.1, time.monotonic() - 1)
    assert asked == [] and found.bound == "none passed"


def test_a_capacity_ratio_with_a_generator_bound_side_is_a_bound():
    go = capacity.ServiceCapacity("go-api-onnx", 3000, "generator")
    onnx = capacity.ServiceCapacity("python-api-onnx", 600, "service")
    assert capacity.ratio([go, onnx], "go-api-onnx", "python-api-onnx") == "≥ 5.0×"
    assert capacity.ratio([go, onnx], "python-api-onnx", "go-api-onnx") == "≤ 0.2×"


def test_capacity_json_round_trips(tmp_path):
    probe, _ = replay({50: step(50, 2, 0.03), 100: step(100, 90, 0.5)})
    found = capacity.decide(probe, "svc", QUOTA, 50, 12800, 0.1, time.monotonic() + 60)
    path = capacity.save([found], tmp_path / "capacity.json")
    [back] = capacity.load(path)
    assert back.capacity_rps == found.capacity_rps and back.bound == found.bound
    assert back.steps == found.steps
    assert capacity.table([back]).loc["svc", "service CPU [µs/req]"] == pytest.approx(600)
