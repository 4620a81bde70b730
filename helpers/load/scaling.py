"""Scaling with CPU: capacity at a quarter of a core up to two cores (notebook 07).

Half a core is one point. A team sizing instances asks how capacity grows with the CPU it
pays for: Python serves one core per process (the GIL), so beyond one core it needs several
uvicorn workers; Go's GOMAXPROCS follows the quota by itself (Go ≥ 1.25, rounded up, at least
2). Each configuration is an instance of one stack with its own quota — one worker at every
size, and `workers_for(cpus)` workers from one core up — searched all at once, a step of each
in turn (helpers.load.search). Memory is fixed per process, 128 MiB a worker, so a
configuration's memory grows with its workers, not with its CPU. Telemetry is off in every
scaling instance: several workers cannot share one Prometheus endpoint, and a figure with
telemetry in some configurations and not others would compare two things.

On a 2-core machine the load generator needs CPU of its own: at one core and above a search
can run out of generator before the service runs out of quota, and `Search.bound()` then says
"generator-bound" — a lower bound, never the service's figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.load import capacity, windows
from helpers.load import search as searching
from helpers.serving.instances import BUDGET_MEMORY_BYTES, Instance, variant
from helpers.sizing import Windows

PYTHON = ("python-api-pkl", "python-api-onnx")
FIRST_SHARE = 0.7  # of the capacity expected from the budget's, scaled by the CPUs
TELEMETRY_OFF = {"OTEL_METRICS_EXPORTER": "none"}


@dataclass(frozen=True)
class Configuration:
    instance: Instance
    cpus: float
    workers: int  # uvicorn workers (Python); 1 for Go, whose runtime uses the quota itself

    @property
    def service(self) -> str:
        return self.instance.service


def workers_for(cpus: float) -> int:
    """Workers for a Python service at `cpus`: one per half core from one core up (a worker
    waiting on its socket leaves its share to the other), so 2 at one core, 4 at two."""
    return max(2, math.ceil(2 * cpus)) if cpus >= 1 else 1


def tag(cpus: float, workers: int) -> str:
    return f"c{round(cpus * 100):03d}" + (f"w{workers}" if workers > 1 else "")


def configurations(services: Iterable[str], cpu_sizes: Iterable[float]) -> list[Configuration]:
    """Every service with one worker at every size, and Python with `workers_for` workers
    from one core up."""
    made = []
    for cpus in cpu_sizes:
        for service in services:
            counts = [1]
            if service in PYTHON and workers_for(cpus) > 1:
                counts.append(workers_for(cpus))
            for workers in counts:
                environment = dict(TELEMETRY_OFF)
                if workers > 1:
                    environment["UVICORN_WORKERS"] = str(workers)
                instance = variant(
                    service,
                    tag(cpus, workers),
                    environment=environment,
                    cpu_cores=cpus,
                    memory_bytes=BUDGET_MEMORY_BYTES * workers,
                )
                made.append(Configuration(instance, cpus, workers))
    return made


def searches(
    configs: list[Configuration], capacity_at_budget: Mapping[str, float], budget_cpus: float
) -> list[searching.Search]:
    """A search per configuration, its first step at `FIRST_SHARE` of the capacity the budget's
    search found scaled by the CPU ratio: near the answer (CPU per request at that load predicts
    the rest well), and a step judged like any other, so a search needs few more."""
    made = []
    for config in configs:
        known = capacity_at_budget.get(config.service) or 100.0
        expected = known * config.cpus / budget_cpus
        pilot = max(10, round(FIRST_SHARE * expected))
        made.append(
            searching.Search(config.instance.name, config.cpus, pilot, max_rate=round(8 * expected))
        )
    return made


def record(configs: list[Configuration], found: list[searching.Search]) -> list[dict[str, Any]]:
    """Per configuration: its capacity, the capacity per CPU, and what bounded it."""
    by_target = {s.target: s for s in found}
    rows = []
    for config in configs:
        result = by_target[config.instance.name]
        capacity = result.capacity()
        rows.append(
            {
                "service": config.service,
                "instance": config.instance.name,
                "cpus": config.cpus,
                "workers": config.workers,
                "memory_bytes": config.instance.memory_bytes,
                "capacity": capacity.record(),
                "capacity_per_cpu": capacity.scaled(1 / config.cpus).record(),
                "display": result.display(),
                "bound": result.bound(),
            }
        )
    return rows


def instances(services: Iterable[str], configs: list[Configuration]) -> list[Instance]:
    """Notebook 07's stack: each service as served (batching, cold start), and every scaling
    configuration."""
    return [variant(service) for service in services] + [c.instance for c in configs]


def measure(
    stack: Any,
    configs: list[Configuration],
    capacity_at_budget: Mapping[str, float],
    budget_cpus: float,
    targets: Callable[[str], Path],
    size: Windows,
    precision: float,
    budget_s: float,
    log: windows.WindowLog,
    progress: Callable[[str], None] = print,
) -> list[searching.Search]:
    """Every configuration's capacity, searched at once within `budget_s`."""
    found = searches(configs, capacity_at_budget, budget_cpus)
    for s in found:
        s.precision = precision

    return capacity.search_at_once(
        stack, found, targets, size, budget_s, log, progress, pilot_windows=None, label="scaling"
    )
