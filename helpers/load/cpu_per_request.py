"""CPU per request against load: each service at several constant rates, from a trickle to its
capacity (notebook 06).

At light load a request costs the wake-ups around it (the event loop, the runtime's threads,
the scrape), not its work: the curve is why a light-load figure misleads.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd

from helpers.load import capacity, steps
from helpers.serving.protocol import feature_ranges
from helpers.sizing import CapacitySize


def cpu_curve(
    stack, services: list[str], rates: dict[str, list[int]], duration_s: float, out_dir: Path
) -> pd.DataFrame:
    """One step per (service, rate): rows of service, rate, CPU µs/request, p95, generator CPU."""
    ranges = feature_ranges(stack.run_dir)
    rows = []
    for service in services:
        for rate in rates[service]:
            step = steps.measure(stack, service, rate, duration_s, ranges, out_dir)
            print(capacity.describe(step), flush=True)
            rows.append(asdict(step))
    return pd.DataFrame(rows)


def curve_rates(capacity_rps: int | None, size: CapacitySize) -> list[int]:
    """A trickle, then fractions of the measured capacity up to it."""
    top = [round(capacity_rps * f) for f in size.fractions] if capacity_rps else []
    return sorted({r for r in (*size.light_rates, *top) if r >= 1})
