"""The generators cross-checked (notebook 06): each service at one rate both vegeta and k6 reach,
measured by each in turn, so the study can say what the generator itself costs and whether the
service sees the same traffic from both.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd

from helpers.load import capacity, steps
from helpers.serving.protocol import feature_ranges
from helpers.sizing import CapacitySize

CROSSCHECK_MAX_RPS = 800  # k6 needs about a core at this rate here: both generators reach it
CROSSCHECK_CONNECTIONS = 10  # the same traffic from both: at most 10 requests in flight


def crosscheck(stack, results: list[capacity.ServiceCapacity], size: CapacitySize, out_dir: Path):
    """Each service at one rate both generators reach, measured by vegeta and by k6."""
    ranges = feature_ranges(stack.run_dir)
    rows = []
    for result in results:
        rate = min(capacity.half_capacity(result), CROSSCHECK_MAX_RPS)
        for repeat in range(size.repeats):
            for generator in steps.GENERATORS:  # interleaved: drifts of the machine hit both
                step = steps.measure(
                    stack,
                    result.service,
                    rate,
                    size.step_s,
                    ranges,
                    out_dir,
                    repeat,
                    generator=generator,
                    connections=CROSSCHECK_CONNECTIONS,
                )
                print(capacity.describe(step), flush=True)
                rows.append(asdict(step))
    return pd.DataFrame(rows)


def crosscheck_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The cross-check side by side: per service and generator, the service's and the
    generator's CPU per request and the p95 each generator saw."""
    columns = {
        "rate": "rate [req/s]",
        "service_cpu_us_per_request": "service CPU [µs/req]",
        "p95_ms": "p95 seen [ms]",
        "generator_cpu_us_per_request": "generator CPU [µs/req]",
    }
    medians = frame.groupby(["service", "generator"], sort=False)[list(columns)].median()
    return medians.rename(columns=columns).round(1)
