"""Money as billed: the smallest task a cloud sells that holds a configuration, per million
predictions, beside the per-resource-hour price.

A per-resource-hour price for 0.5 vCPU and 128 MiB understates what a team pays: AWS Fargate
sells no such task — 0.5 vCPU comes with 1 to 4 GB, the smallest task is 0.25 vCPU with
0.5 GB. Here every configuration is priced twice: by the resources it is limited to (the
study's budget, per vCPU-hour and GB-hour) and as billed — the cheapest task size in
`data/fargate-task-sizes.json` with at least its CPU and memory. The task sizes are data with
their date and source; the prices are the notebook's parameters, with theirs.

A fleet for a target rate runs each task at most `1 − headroom` full:
    tasks = ceil(target / (capacity × (1 − headroom)))
and a capacity's 95 % interval carries through to the tasks and the dollars. A capacity that
is only a lower bound (generator-bound) makes every figure built on it an upper bound.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from helpers.intervals import Estimate

TASK_SIZES = Path(__file__).parent / "data" / "fargate-task-sizes.json"
HOURS_PER_MONTH = 730  # 365 × 24 / 12, the convention of cloud price lists
GB = 1024**3  # a Fargate "GB" of task memory is 1024 MiB


@dataclass(frozen=True)
class Prices:
    name: str  # "x86", "arm"
    vcpu_hour: float
    gb_hour: float
    source: str  # which public price list, and when


@dataclass(frozen=True)
class Task:
    vcpu: float
    memory_gb: float

    def hourly(self, prices: Prices) -> float:
        return self.vcpu * prices.vcpu_hour + self.memory_gb * prices.gb_hour


def task_sizes(path: Path = TASK_SIZES) -> list[Task]:
    """Every task size the table allows, cheapest-first candidates in (vCPU, memory) order."""
    record = json.loads(Path(path).read_text())
    sizes = []
    for row in record["sizes"]:
        memory = row["memory_gb"]
        if isinstance(memory, dict):
            count = round((memory["to"] - memory["from"]) / memory["step"]) + 1
            memory = [memory["from"] + i * memory["step"] for i in range(count)]
        sizes += [Task(float(row["vcpu"]), float(gb)) for gb in memory]
    return sorted(sizes, key=lambda t: (t.vcpu, t.memory_gb))


def validate(prices: list[Prices], target_rates: list[float], headroom: float) -> None:
    """ValueError, in one line, on parameters no plan can be made from."""
    if not target_rates or any(
        not (isinstance(r, int | float) and math.isfinite(r) and r > 0) for r in target_rates
    ):
        raise ValueError(f"target_rates must be positive numbers (req/s), got {target_rates!r}")
    for p in prices:
        for what, value in (("per vCPU-hour", p.vcpu_hour), ("per GB-hour", p.gb_hour)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{p.name} price {what} must be ≥ 0 dollars, got {value!r}")
    if not 0 <= headroom < 1:
        raise ValueError(f"headroom must be a fraction in [0, 1), got {headroom!r}")


def smallest_task(cpu_cores: float, memory_bytes: int, prices: Prices, sizes: list[Task]) -> Task:
    """The cheapest task with at least `cpu_cores` vCPU and `memory_bytes` of memory."""
    fitting = [t for t in sizes if t.vcpu >= cpu_cores and t.memory_gb * GB >= memory_bytes]
    if not fitting:
        raise ValueError(f"no task size holds {cpu_cores} vCPU and {memory_bytes} bytes")
    return min(fitting, key=lambda t: (t.hourly(prices), t.vcpu, t.memory_gb))


def per_resource_hourly(cpu_cores: float, memory_bytes: int, prices: Prices) -> float:
    """The configuration's own resources priced per unit: what no cloud bills exactly."""
    return cpu_cores * prices.vcpu_hour + memory_bytes / GB * prices.gb_hour


def fleet(capacity_rps: float, target_rps: float, headroom: float) -> float:
    if not capacity_rps or not math.isfinite(capacity_rps) or capacity_rps <= 0:
        return math.inf
    return float(math.ceil(target_rps / (capacity_rps * (1 - headroom))))


def plan(
    service: str,
    capacity: Estimate,
    upper_bound: bool,
    cpu_cores: float,
    memory_bytes: int,
    target_rps: float,
    prices: Prices,
    headroom: float,
    sizes: list[Task],
) -> dict[str, Any]:
    """A fleet for `target_rps`, priced per resource and as billed, each with its interval
    (from the capacity's: more capacity, fewer tasks, fewer dollars)."""
    task = smallest_task(cpu_cores, memory_bytes, prices, sizes)
    tasks = capacity.mapped(lambda c: fleet(c, target_rps, headroom))
    per_million = 1e6 / (target_rps * 3600)

    def dollars(hourly: float) -> Estimate:
        return tasks.mapped(lambda n: n * hourly * per_million)

    return {
        "service": service,
        "target_rps": target_rps,
        "prices": prices.name,
        "capacity_rps": capacity.record(),
        "upper_bound": upper_bound,
        "cpu_cores": cpu_cores,
        "memory_bytes": memory_bytes,
        "instances": tasks.record(),
        "task": asdict(task),
        "task_hourly": task.hourly(prices),
        "billed_dollars_per_million": dollars(task.hourly(prices)).record(),
        "billed_monthly_dollars": tasks.mapped(
            lambda n: n * task.hourly(prices) * HOURS_PER_MONTH
        ).record(),
        "per_resource_dollars_per_million": dollars(
            per_resource_hourly(cpu_cores, memory_bytes, prices)
        ).record(),
    }


def money(value: float, upper_bound: bool = False) -> str:
    """`$12.34` (`$0.0231` below a dollar), or `≤ $12.34` when it rests on a lower bound."""
    if not math.isfinite(value):
        return "n/a"
    shown = f"${value:,.2f}" if value >= 1 else f"${value:.3g}"
    return f"≤ {shown}" if upper_bound else shown


def money_interval(raw: dict[str, Any], upper_bound: bool = False) -> str:
    """A dollar Estimate record as '$0.0123 (95 %: 0.0110–0.0140)'."""
    estimate = Estimate.from_record(raw)
    shown = money(estimate.value, upper_bound)
    if not estimate.repeated or not estimate.finite or estimate.low == estimate.high:
        return shown
    return f"{shown} (95 %: {estimate.low:.3g}–{estimate.high:.3g})"
