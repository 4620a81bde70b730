"""The heaviest zoo model (notebook 09): its capacity on every service that serves it, and its
cold start beside logistic regression's — on the stack that served the whole zoo.

Capacity: the heaviest model's instances are searched at once, a step of each in turn
(helpers.load.search, as notebook 06 searches the services), within the zoo's capacity
budget. Each search's pilot is a third of what the instance's CPU per request in the serving
comparison predicts its quota holds, so the first step is light and the next is aimed. A
capacity is said with its bounds: "≥ X (generator-bound)", "< X (none passed)".

Cold start: each of those instances and the reference (the same service serving logistic
regression) restarted in turn, `cold_starts` times (helpers.load.coldstart): what a model
adds to the time from spawn to the first correct answer, measured in the same stretch of time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from helpers.load import capacity as load_capacity
from helpers.load import coldstart, interleave, windows
from helpers.load import search as searching
from helpers.sizing import ZooSize
from helpers.zoo.serving import REFERENCE, model_of

PILOT_SHARE = 1 / 3  # of the predicted capacity
MIN_PILOT_RPS = 5
MAX_RATE_FACTOR = 8  # the search's ceiling, a multiple of the prediction


def instances_of(running: Mapping[str, Any], model: str) -> list[str]:
    """The stack's instances serving `model`, in the stack's order."""
    return [name for name, instance in running.items() if model_of(instance) == model]


def predicted_rps(
    compared: list[interleave.Comparison], name: str, cpu_cores: float | None
) -> float:
    """What the quota holds at the instance's CPU per request in its comparison (NaN if it
    was not measured there)."""
    for comparison in compared:
        arm = next((a for a in comparison.arms if a.target == name), None)
        if arm is not None:
            cpu_us = comparison.cpu_us_per_request(arm.label).value
            if math.isfinite(cpu_us) and cpu_us > 0:
                return (cpu_cores or 1.0) * 1e6 / cpu_us
    return math.nan


def searches(
    names: list[str],
    limits: Mapping[str, Any],
    compared: list[interleave.Comparison],
    fallback_rps: int,
    precision: float,
) -> list[searching.Search]:
    """A search per instance, its pilot and ceiling from the prediction (or `fallback_rps`)."""
    made = []
    for name in names:
        cpu = limits[name].cpu_cores
        expected = predicted_rps(compared, name, cpu)
        if not math.isfinite(expected):
            expected = 3.0 * fallback_rps
        pilot = max(MIN_PILOT_RPS, round(PILOT_SHARE * expected))
        ceiling = max(round(MAX_RATE_FACTOR * expected), 10 * pilot)
        made.append(searching.Search(name, cpu, pilot, ceiling, precision))
    return made


def capacity(
    stack: Any,
    names: list[str],
    compared: list[interleave.Comparison],
    size: ZooSize,
    target_of: Callable[[str], Path],
    out_dir: Path,
    fallback_rps: int,
    progress: Callable[[str], None] = print,
) -> list[searching.Search]:
    """The capacity of every instance in `names`, searched at once within `size.capacity_s`."""
    found = searches(names, stack.limits, compared, fallback_rps, size.precision)
    log = windows.WindowLog(out_dir / "capacity.jsonl")

    return load_capacity.search_at_once(
        stack, found, target_of, size.windows, size.capacity_s, log, progress
    )


def cold_start(
    stack: Any,
    names: list[str],
    attempts: int,
    ranges: dict[str, Any],
    progress: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """Cold starts of `names` and of their services' references, in turn; per instance the
    median of each phase with its interval (helpers.load.coldstart.summary)."""
    services = {stack.instances[name].service for name in names}
    references = [
        name
        for name, instance in stack.instances.items()
        if instance.service in services and model_of(instance) == REFERENCE
    ]
    measured = coldstart.measure(stack, [*names, *references], attempts, ranges, progress)
    return coldstart.summary(measured)
