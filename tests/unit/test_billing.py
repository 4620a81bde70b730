"""Money as billed, on numbers given here: the smallest task that holds a configuration, the
fleet, and intervals carried from the capacity into dollars."""

from __future__ import annotations

import math

import pytest

from helpers.analysis import billing, headline
from helpers.intervals import Estimate

X86 = billing.Prices("x86", 0.04048, 0.004445, "test list")
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def sizes():
    return billing.task_sizes()


def test_the_task_table_holds_fargates_combinations(sizes):
    by_cpu = {}
    for task in sizes:
        by_cpu.setdefault(task.vcpu, []).append(task.memory_gb)
    assert by_cpu[0.25] == [0.5, 1.0, 2.0]
    assert by_cpu[0.5] == [1.0, 2.0, 3.0, 4.0]
    assert min(by_cpu[16]) == 32 and max(by_cpu[16]) == 120


def test_the_budget_is_billed_as_the_smallest_task_that_holds_it(sizes):
    assert billing.smallest_task(0.5, 128 * MIB, X86, sizes) == billing.Task(0.5, 1.0)
    assert billing.smallest_task(0.25, 128 * MIB, X86, sizes) == billing.Task(0.25, 0.5)
    assert billing.smallest_task(1.0, 512 * MIB, X86, sizes) == billing.Task(1.0, 2.0)
    with pytest.raises(ValueError, match="no task size holds"):
        billing.smallest_task(32, 128 * MIB, X86, sizes)


def test_billed_costs_more_than_the_resources_and_intervals_carry_through(sizes):
    capacity = Estimate(600.0, 500.0, 700.0, 6, "steps")
    plan = billing.plan("svc", capacity, False, 0.5, 128 * MIB, 1000, X86, 0.3, sizes)
    tasks = Estimate.from_record(plan["instances"])
    assert tasks.value == math.ceil(1000 / (600 * 0.7))
    assert (tasks.low, tasks.high) == (math.ceil(1000 / 490), math.ceil(1000 / 350))
    billed = Estimate.from_record(plan["billed_dollars_per_million"])
    per_resource = Estimate.from_record(plan["per_resource_dollars_per_million"])
    hourly = 0.5 * 0.04048 + 1.0 * 0.004445
    assert billed.value == pytest.approx(tasks.value * hourly / (1000 * 3600) * 1e6)
    assert billed.value > per_resource.value
    assert billed.low <= billed.value <= billed.high


def test_bad_prices_and_rates_stop_with_one_line():
    with pytest.raises(ValueError, match="target_rates"):
        billing.validate([X86], [0], 0.3)
    with pytest.raises(ValueError, match="per vCPU-hour"):
        billing.validate([billing.Prices("x86", -1, 0.1, "")], [1000], 0.3)
    with pytest.raises(ValueError, match="headroom"):
        billing.validate([X86], [1000], 1.0)


def test_money_says_upper_bounds_as_such():
    assert billing.money(0.0123, upper_bound=True) == "≤ $0.0123"
    assert billing.money(12.345) == "$12.35"
    assert billing.money(math.nan) == "n/a"


def test_the_headline_is_computed_from_the_summary_it_is_given():
    summary = {
        "machine": {"cpu_model": "Test CPU", "usable_cpus": 2, "load_average": {"1m": 0.5}},
        "capacity": {
            "svc": {
                "rate_rps": 600,
                "display": "600",
                "bound": "service",
                "interval": Estimate(600, 550, 650, 7, "steps").record(),
                "service_cpu_us_per_request": Estimate(700, 680, 720, 5).record(),
                "working_set_bytes": Estimate(50 * MIB, 50 * MIB, 51 * MIB, 5).record(),
            }
        },
        "findings": {"batching": "A computed batching sentence."},
    }
    table = headline.table(summary)
    assert table.loc["svc", "capacity [req/s]"] == "600"
    assert table.loc["svc", "95 % interval"] == "550–650"
    said = headline.sentences(summary)
    assert any("Test CPU" in s for s in said)
    assert any("svc 600 req/s (95 %: 550–650)" in s for s in said)
    assert "A computed batching sentence." in said
    assert "within this run" in said[-1]
