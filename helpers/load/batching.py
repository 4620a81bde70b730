"""Batching: what a prediction costs when a client sends rows in batches (notebook 07).

Every serving framework a team would compare batches (MLServer, Triton, Ray Serve, LitServe),
and the contract has `/predict/batch` (1..1024 rows). Here each service is stepped with
client batches of 1, 4, 16 … 1024 rows at half its quota: the rate of each size is set from
the CPU per row the previous size measured (at one row, from the capacity notebook 06
found), so every size loads the service alike. A step reports CPU per request and per
prediction (per row) with their intervals over windows, and p95 per request.

The services are stepped in turn for each size, so a drift of the machine spreads over all.

The contract allows 1..1024 rows but caps a body at 64 KiB, which bounds what one request can
make a service hold under 128 MiB. With all four features a row takes about 78 bytes, so 1024
rows (~80 KB) are refused with 413: `fitting` replaces a size whose largest body would not fit
by the largest that does, and says so.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.intervals import Estimate
from helpers.load import stepping, windows

BATCH_SIZES = (1, 4, 16, 64, 256, 1024)
UTILISATION = 0.5  # of the CPU quota each size is loaded to
BODY_LIMIT_BYTES = 64 * 1024  # the contract's cap on a request body (services/CONTRACT.md)


def largest_body(ranges: dict[str, Any], rows: int) -> int:
    """Bytes of the widest body of `rows` rows the targets can draw (every feature written
    with its widest two-decimal value), as windows.targets_file writes it."""

    def width(r: dict[str, float]) -> int:
        return max(len(f"{r['min']:.2f}"), len(f"{r['max']:.2f}"))

    keys = json.dumps(dict.fromkeys(ranges, 0), separators=(",", ":"))
    row = len(keys) - len(ranges) + sum(width(r) for r in ranges.values())
    return len('{"instances":[]}') + rows * row + (rows - 1)


def fitting(sizes: Sequence[int], ranges: dict[str, Any]) -> tuple[list[int], str]:
    """The sizes to measure: each one whose body fits the contract's cap, the others replaced
    by the largest that fits; and a sentence saying what was replaced (or '')."""
    largest = max(n for n in range(1, 1025) if largest_body(ranges, n) <= BODY_LIMIT_BYTES)
    chosen = sorted({min(size, largest) for size in sizes})
    capped = [size for size in sizes if size > largest]
    if not capped:
        return chosen, ""
    return chosen, (
        f"{', '.join(map(str, capped))} rows do not fit the contract's {BODY_LIMIT_BYTES // 1024}"
        f" KiB body cap with all four features ({largest_body(ranges, capped[0]):,} bytes; "
        f"the services answer 413): the largest batch measured is {largest} rows."
    )


@dataclass
class BatchPoint:
    service: str
    batch: int
    rate: int  # requests per second
    step: stepping.Step

    def cpu_us_per_prediction(self) -> Estimate:
        return self.step.cpu_us_per_request().scaled(1.0 / self.batch)

    def record(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "batch": self.batch,
            "rate_rps": self.rate,
            "predictions_per_s": self.rate * self.batch,
            "cpu_us_per_request": self.step.cpu_us_per_request().record(),
            "cpu_us_per_prediction": self.cpu_us_per_prediction().record(),
            "p95_ms": self.step.p95_ms().record(),
            "error_rate": self.step.error_rate(),
            "verdict": self.step.verdict(),
            "service_cores": self.step.service_cores(),
            "generator_cores": self.step.generator_cores(),
        }


def rate_for(cpu_us_per_row: float, batch: int, cpu_limit: float) -> int:
    """Requests per second that load `UTILISATION` of the quota, if a row of this batch costs
    what a row cost at the previous size (per-row costs fall with size: the load is at most
    that)."""
    per_request_s = cpu_us_per_row * batch / 1e6
    return max(1, math.floor(UTILISATION * cpu_limit / per_request_s))


def measure(
    stack: Any,
    services: Mapping[str, float],  # instance → its single-row capacity (req/s)
    cpu_limit: float,
    ranges: dict[str, Any],
    out_dir: Path,
    window_s: float,
    max_windows: int,
    sizes: Sequence[int] = BATCH_SIZES,
    progress: Callable[[str], None] = print,
) -> list[BatchPoint]:
    """Every size for every service, sizes in increasing order; each step's windows are
    logged in `out_dir/windows.jsonl`."""
    log = windows.WindowLog(out_dir / "windows.jsonl")
    per_row = {s: cpu_limit * 1e6 / max(c, 1.0) for s, c in services.items()}  # at capacity
    points = []
    for batch in sizes:
        for service in services:
            rate = rate_for(per_row[service], batch, cpu_limit)
            targets = windows.targets_file(
                stack.load_target_urls[service],
                ranges,
                out_dir / "targets" / f"{service}-{batch}.json",
                batch=batch,
            )
            step = stepping.run(
                stack, service, rate, targets, window_s, max_windows, log, f"batch {batch}", batch
            )
            point = BatchPoint(service, batch, rate, step)
            measured = point.cpu_us_per_prediction().value
            if math.isfinite(measured) and measured > 0:
                per_row[service] = measured
            points.append(point)
            progress(f"batch {batch:>4}: {step.describe()}")
    return points


def crossover(
    points: Sequence[BatchPoint], service: str, reference_us: float
) -> tuple[float | None, str]:
    """The batch size at which `service`'s CPU per prediction falls to `reference_us` (Go's
    per single-row request, say), interpolated on log scales between the sizes measured;
    None with the reason when it never does."""
    curve = sorted(
        (p.batch, p.cpu_us_per_prediction().value)
        for p in points
        if p.service == service and math.isfinite(p.cpu_us_per_prediction().value)
    )
    if not curve or not math.isfinite(reference_us):
        return None, "not measured"
    if curve[0][1] <= reference_us:
        return float(curve[0][0]), f"already at {curve[0][0]} row(s)"
    for (b0, c0), (b1, c1) in itertools.pairwise(curve):
        if c1 <= reference_us < c0:
            share = (math.log(c0) - math.log(reference_us)) / (math.log(c0) - math.log(c1))
            at = math.exp(math.log(b0) + share * (math.log(b1) - math.log(b0)))
            return at, f"between {b0} and {b1} rows"
    return None, f"not even at {curve[-1][0]} rows ({curve[-1][1]:.1f} µs per prediction)"
