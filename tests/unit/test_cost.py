"""The money arithmetic on numbers a reader can check by hand."""

from __future__ import annotations

import pytest

from helpers.analysis import cost

PRICES = cost.Prices(vcpu_hour=0.04, gib_hour=0.004, source="test")


def test_one_instance_costs_half_a_vcpu_and_an_eighth_of_a_gib():
    assert cost.instance_hourly(PRICES) == pytest.approx(0.5 * 0.04 + 0.125 * 0.004)


def test_the_fleet_keeps_its_headroom_and_rounds_up():
    # 1000 req/s on instances of 300 req/s run at most 70 % full: 1000 / 210 → 5 instances.
    fleet = cost.plan("svc", 300, False, 1000, PRICES, headroom=0.3)
    assert fleet.instances == 5
    hourly = 5 * cost.instance_hourly(PRICES)
    assert fleet.monthly_dollars == pytest.approx(hourly * 730)
    assert fleet.dollars_per_million == pytest.approx(hourly / (1000 * 3600) * 1e6)


def test_ratios_follow_capacity_and_a_lower_bound_gives_an_upper_bound():
    slow = cost.plan("pkl", 200, False, 10_000, PRICES, 0.3)
    fast = cost.plan("go", 3200, True, 10_000, PRICES, 0.3)
    assert slow.instances == 72 and fast.instances == 5
    assert slow.dollars_per_million / fast.dollars_per_million == pytest.approx(72 / 5)
    assert cost.money(fast.dollars_per_million, fast.upper_bound).startswith("≤ $")
    assert cost.plan("none", None, False, 1000, PRICES, 0.3) is None


@pytest.mark.parametrize(
    ("rates", "prices", "headroom", "message"),
    [
        ([0], PRICES, 0.3, "target_rates"),
        ([], PRICES, 0.3, "target_rates"),
        ([1000], cost.Prices(-0.01, 0.004, "x"), 0.3, "vCPU-hour"),
        ([1000], cost.Prices(0.04, float("nan"), "x"), 0.3, "GiB-hour"),
        ([1000], PRICES, 1.0, "headroom"),
    ],
)
def test_bad_parameters_stop_with_one_clear_line(rates, prices, headroom, message):
    with pytest.raises(ValueError, match=message):
        cost.validate(rates, prices, headroom)
