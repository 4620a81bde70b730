"""The study's intervals: what they contain, when they are missing, and how they are said."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import intervals
from helpers.intervals import Estimate


def test_a_mean_interval_contains_the_mean_and_narrows_with_more_windows():
    rng = np.random.default_rng(7)
    few = intervals.mean(rng.normal(100, 10, 5))
    many = intervals.mean(rng.normal(100, 10, 60))
    for estimate in (few, many):
        assert estimate.low <= estimate.value <= estimate.high
    assert many.high - many.low < few.high - few.low
    assert many.low < 100 < many.high


def test_one_sample_is_not_repeated_and_says_so():
    estimate = intervals.mean([719.0])
    assert not estimate.repeated
    assert estimate.text(suffix=" µs") == "719 µs (not repeated)"
    assert not estimate.excludes(0.0)


def test_two_samples_give_their_range_not_a_95_percent_interval():
    estimate = intervals.mean([10.0, 14.0])
    assert (estimate.low, estimate.value, estimate.high) == (10.0, 12.0, 14.0)
    assert "range of 2 windows" in estimate.text()


def test_identical_samples_give_a_point_interval_without_warnings():
    estimate = intervals.mean([5.0, 5.0, 5.0, 5.0])
    assert (estimate.low, estimate.high) == (5.0, 5.0)


def test_ratio_of_sums_is_cpu_per_request_over_windows():
    cpu_s = [0.5, 0.52, 0.49, 0.51]
    requests = [1000, 1010, 990, 1000]
    estimate = intervals.ratio_of_sums(cpu_s, requests).scaled(1e6)
    assert estimate.value == pytest.approx(sum(cpu_s) / sum(requests) * 1e6)
    assert estimate.low < estimate.value < estimate.high


def test_a_paired_change_sees_a_small_effect_that_drift_would_hide():
    # Every round drifts by up to ±30 %, hitting both arms alike; B costs 5 % more than A.
    rng = np.random.default_rng(3)
    drift = 1 + rng.uniform(-0.3, 0.3, 12)
    requests = np.full(12, 1000.0)
    a_cpu = 0.5 * drift * rng.normal(1, 0.01, 12)
    b_cpu = 0.5 * 1.05 * drift * rng.normal(1, 0.01, 12)
    change = intervals.paired_change((a_cpu, requests), (b_cpu, requests))
    assert change.excludes(0.0)
    assert change.low < 0.05 < change.high
    unpaired = intervals.ratio_of_independent((b_cpu, requests), (a_cpu, requests))
    assert not unpaired.mapped(lambda r: r - 1).excludes(0.0)  # apart, drift swamps it


def test_a_null_effect_has_an_interval_around_zero():
    rng = np.random.default_rng(5)
    requests = np.full(10, 1000.0)
    cpu = 0.5 * rng.normal(1, 0.02, 10)
    same = intervals.paired_change((cpu, requests), (cpu * rng.normal(1, 0.02, 10), requests))
    assert same.low < 0 < same.high
    assert not same.excludes(0.0)


def test_non_finite_units_are_dropped_and_an_empty_sample_is_nan():
    estimate = intervals.mean([1.0, math.nan, 3.0, 2.0])
    assert estimate.samples == 3
    assert math.isnan(intervals.mean([]).value)


def test_mapped_through_a_decreasing_function_keeps_low_below_high():
    capacity = Estimate(600.0, 550.0, 700.0, 6, "steps")
    dollars = capacity.mapped(lambda rps: 100.0 / rps)
    assert dollars.low == pytest.approx(100 / 700) and dollars.high == pytest.approx(100 / 550)


def test_a_record_round_trips_through_json_without_nan():
    estimate = Estimate(1.0, math.nan, math.nan, 1)
    record = estimate.record()
    assert record["low"] is None
    again = Estimate.from_record(record)
    assert again.value == 1.0 and math.isnan(again.low)
