"""Serving each zoo model (notebook 08): every model served by the services that can load it,
each measured at one rate, and the heaviest model's capacity on a stack of its own.
helpers.zoo.serving_report turns the rows into the table and the sentence.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pandas as pd

from helpers import net
from helpers.load import capacity, steps
from helpers.serving.protocol import feature_ranges
from helpers.serving.stack import start_stack
from helpers.sizing import CapacitySize


def serve_models(
    backend: str,
    run_dir: Path,
    models: dict[str, tuple[Path, list[str]]],
    rate: int,
    duration_s: float,
    repeats: int = 1,
) -> pd.DataFrame:
    """Each model of the zoo served by the services that can load it (name → its artifacts
    folder and those services), each service measured at `rate`: rows of model, service, CPU
    µs/request, p95, and — when a service could not start or stopped — why."""
    rows = []
    for model, (artifacts_dir, services) in models.items():
        remaining = list(services)
        while remaining:
            model_dir = run_dir / "zoo-serving" / model
            try:
                stack = start_stack(
                    backend, run_dir=model_dir, artifacts_dir=artifacts_dir, services=remaining
                )
            except net.NotReady as error:  # one service cannot load this model: say so, go on
                failed = next((s for s in remaining if str(error).startswith(s)), remaining[0])
                reason = str(error).splitlines()[0]
                rows.append({"model": model, "service": failed, "problem": reason})
                remaining.remove(failed)
                continue
            with stack:
                ranges = feature_ranges(stack.run_dir)
                for service in remaining:
                    measured = [
                        steps.measure(stack, service, rate, duration_s, ranges, model_dir, repeat)
                        for repeat in range(repeats)
                    ]
                    for step in measured:
                        print(f"  [{model}] {capacity.describe(step).strip()}", flush=True)
                    stopped = [e.sentence() for e in stack.failures() if e.service == service]
                    rows.append(
                        {
                            "model": model,
                            "service": service,
                            "rate": rate,
                            "cpu_us_per_request": statistics.median(
                                s.service_cpu_us_per_request for s in measured
                            ),
                            "p95_ms": statistics.median(s.p95_ms for s in measured),
                            "error_rate": max(s.error_rate for s in measured),
                            "problem": "; ".join(stopped),
                        }
                    )
            remaining = []
    return pd.DataFrame(rows)


def capacity_of(
    backend: str, run_dir: Path, artifacts_dir: Path, services: list[str], size: CapacitySize
) -> list[capacity.ServiceCapacity]:
    """The capacity of `services` serving the model in `artifacts_dir`, on a stack of their own."""
    with start_stack(
        backend, run_dir=run_dir, artifacts_dir=artifacts_dir, services=services
    ) as stack:
        return capacity.run(stack, run_dir, budget_s=size.budget_s / 2, **size.search)
