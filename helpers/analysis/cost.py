"""What a way of serving costs in money: instances for a target rate, $ per month, $ per million.

The study's budget is one instance = 0.5 vCPU and 128 MiB. An instance serves up to its
measured capacity; a fleet keeps `headroom` spare (a fleet run at 100 % of capacity breaks
its objective at the first burst), so a target rate needs
    instances = ceil(target / (capacity × (1 − headroom)))
priced per vCPU-hour and per GiB-hour. The default prices are AWS Fargate's on-demand list
(FARGATE_US_EAST_1): a unit price for the resources, not a Fargate task size — Fargate's
smallest 0.5 vCPU task has 1 GB, which the study does not pretend to measure.

A capacity that is only a lower bound (generator-bound) makes the instance count and every
dollar figure an upper bound: the report says "≤ $x", never "$x".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

HOURS_PER_MONTH = 730  # 365 × 24 / 12, the convention of cloud price lists


@dataclass(frozen=True)
class Prices:
    vcpu_hour: float  # $ per vCPU per hour
    gib_hour: float  # $ per GiB of memory per hour
    source: str  # which public price list, and when


FARGATE_US_EAST_1 = Prices(
    0.04048,
    0.004445,
    "AWS Fargate on-demand, Linux/x86, US East (N. Virginia): $0.04048 per vCPU-hour and "
    "$0.004445 per GB-hour (aws.amazon.com/fargate/pricing, as listed in June 2026)",
)


@dataclass(frozen=True)
class Budget:
    cpu_cores: float = 0.5
    memory_gib: float = 0.125  # 128 MiB


def validate(target_rates: list[float], prices: Prices, headroom: float) -> None:
    """Raise ValueError, in one line, on parameters no plan can be made from."""
    if not target_rates or any(not (isinstance(r, int | float) and r > 0) for r in target_rates):
        raise ValueError(f"target_rates must be positive numbers (req/s), got {target_rates!r}")
    for name, value in (
        ("price per vCPU-hour", prices.vcpu_hour),
        ("price per GiB-hour", prices.gib_hour),
    ):
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a non-negative number of dollars, got {value!r}")
    if not 0 <= headroom < 1:
        raise ValueError(f"headroom must be a fraction in [0, 1), got {headroom!r}")


def instance_hourly(prices: Prices, budget: Budget = Budget()) -> float:
    """What one instance of the budget costs per hour."""
    return budget.cpu_cores * prices.vcpu_hour + budget.memory_gib * prices.gib_hour


@dataclass(frozen=True)
class Plan:
    service: str
    target_rps: float
    capacity_rps: float
    upper_bound: bool  # the capacity was a lower bound: every figure below is at most this
    instances: int
    monthly_dollars: float
    dollars_per_million: float


def plan(
    service: str,
    capacity_rps: float | None,
    lower_bound: bool,
    target_rps: float,
    prices: Prices,
    headroom: float,
    budget: Budget = Budget(),
) -> Plan | None:
    """The fleet for `target_rps`; None when the service has no measured capacity."""
    if not capacity_rps or capacity_rps <= 0:
        return None
    instances = math.ceil(target_rps / (capacity_rps * (1 - headroom)))
    hourly = instances * instance_hourly(prices, budget)
    return Plan(
        service=service,
        target_rps=target_rps,
        capacity_rps=capacity_rps,
        upper_bound=lower_bound,
        instances=instances,
        monthly_dollars=hourly * HOURS_PER_MONTH,
        dollars_per_million=hourly / (target_rps * 3600) * 1e6,
    )


def money(value: float, upper_bound: bool) -> str:
    """`$12.34` (`$0.0231` below a dollar), or `≤ $12.34` when it rests on a lower bound."""
    if not math.isfinite(value):
        return "n/a"
    shown = f"${value:,.2f}" if value >= 1 else f"${value:.3g}"
    return f"≤ {shown}" if upper_bound else shown


def plans(results, target_rates: list[float], prices: Prices, headroom: float) -> pd.DataFrame:
    """One row per (service, target rate) for the services whose capacity was measured."""
    rows = []
    for result in results:
        for target in target_rates:
            fleet = plan(
                result.service,
                result.capacity_rps,
                result.bound != "service",
                target,
                prices,
                headroom,
            )
            if fleet is not None:
                rows.append(vars(fleet))
    return pd.DataFrame(rows)


def table(plans: pd.DataFrame) -> pd.DataFrame:
    """The plans in reading units, bounds said as bounds."""
    shown = pd.DataFrame(
        {
            "service": plans["service"],
            "target [req/s]": plans["target_rps"].map("{:,.0f}".format),
            "instances": [("≤ " if b else "") + str(n) for n, b in
                          zip(plans["instances"], plans["upper_bound"], strict=True)],
            "per month": [money(v, b) for v, b in
                          zip(plans["monthly_dollars"], plans["upper_bound"], strict=True)],
            "per million predictions": [money(v, b) for v, b in
                                        zip(plans["dollars_per_million"], plans["upper_bound"],
                                            strict=True)],
        }
    )  # fmt: skip
    return shown.set_index(["target [req/s]", "service"]).sort_index()
