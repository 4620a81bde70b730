"""Replicas from the study: a target rate and a run's measured capacity → pods per service.

The count is the cost model's (helpers.analysis.cost.plan): instances of the budget for the
target at the run's headroom. A capacity that is only a lower bound (generator-bound, or the
search hit its limit) makes the count an upper bound, said as "≤ N", as notebook 06 says it.
The capacity comes from `summary.json`'s `capacity` section (notebook 06); without a target,
a run, or a measured capacity, a service gets 1 replica and the reason is printed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import paths
from helpers.analysis import cost
from helpers.serving.services import SERVICE_NAMES

DEFAULT_HEADROOM = 0.3  # notebook 06's default, used when the run's summary has no cost section
SUMMARY_NAME = "summary.json"


@dataclass(frozen=True)
class Sizing:
    service: str
    replicas: int
    upper_bound: bool  # the capacity was a lower bound, so `replicas` is at most this
    capacity_rps: float | None
    plan: cost.Plan | None
    note: str

    def line(self) -> str:
        if self.plan is None:
            return f"{self.service}: 1 replica ({self.note})"
        at_most = "≤ " if self.upper_bound else ""
        bound = " — an upper bound: the capacity is a lower bound" if self.upper_bound else ""
        return (
            f"{self.service}: {at_most}{self.replicas} replica{'s' if self.replicas > 1 else ''} "
            f"for {self.plan.target_rps:g} req/s at {self.note}, "
            f"{cost.money(self.plan.monthly_dollars, self.upper_bound)}/month{bound}"
        )


def parse_target(value: Any) -> float | None:
    """TARGET_RPS: empty → None; else a positive finite number of req/s, or ValueError."""
    if value is None or str(value).strip() == "":
        return None
    try:
        rate = float(str(value))
    except ValueError:
        rate = math.nan
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"TARGET_RPS must be a positive number of requests per second, "
                         f"got {value!r}")  # fmt: skip
    return rate


def summary_path(run: str | None, results_dir: Path = paths.RESULTS_DIR) -> Path | None:
    """The summary.json of RUN (a run folder, its id under results/, or the file itself);
    without RUN the newest results/*/summary.json with a capacity section, or None."""
    if run:
        candidates = list(dict.fromkeys([Path(run), Path(results_dir) / run]))
        for candidate in candidates:
            path = candidate if candidate.name == SUMMARY_NAME else candidate / SUMMARY_NAME
            if path.is_file():
                if "capacity" not in _read(path):
                    raise ValueError(f"{path} has no capacity section: run notebook 06 on it")
                return path
        where = " or ".join(str(c) for c in candidates)
        raise FileNotFoundError(f"run {run!r}: no {SUMMARY_NAME} in {where}")
    found = [p for p in Path(results_dir).glob(f"*/{SUMMARY_NAME}") if "capacity" in _read(p)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None


def size(target_rps: float | None, summary: Path | None) -> list[Sizing]:
    """One Sizing per service, in the seed's order."""
    if target_rps is None:
        return [_one(s, "no TARGET_RPS given") for s in SERVICE_NAMES]
    if summary is None:
        reason = (f"no run under {paths.RESULTS_DIR} has a capacity section (notebook 06) and "
                  "no RUN was given: the target rate is not used")  # fmt: skip
        return [_one(s, reason) for s in SERVICE_NAMES]
    data = _read(summary)
    headroom = headroom_of(summary)
    listed = data.get("cost", {}).get("prices")  # notebook 07's lists: the first is x86
    first = listed[0] if isinstance(listed, list) and listed else None
    prices = (
        cost.Prices(first["vcpu_hour"], first["gb_hour"], first["source"])
        if first
        else cost.FARGATE_US_EAST_1
    )
    cost.validate([target_rps], prices, headroom)
    result = []
    for service in SERVICE_NAMES:
        measured = data["capacity"].get(service) or {}
        rate, bound = measured.get("rate_rps"), measured.get("bound", "none passed")
        fleet = cost.plan(service, rate, bound != "service", target_rps, prices, headroom)
        if fleet is None:
            result.append(_one(service, f"no measured capacity in {summary} ({bound})"))
            continue
        at_least = "≥ " if fleet.upper_bound else ""
        note = f"{headroom:.0%} headroom, capacity {at_least}{rate:g} req/s ({bound}-bound)"
        result.append(Sizing(service, fleet.instances, fleet.upper_bound, rate, fleet, note))
    return result


def _one(service: str, note: str) -> Sizing:
    return Sizing(service, 1, False, None, None, note)


def headroom_of(summary: Path | None) -> float:
    if summary is None:
        return DEFAULT_HEADROOM
    return float(_read(summary).get("cost", {}).get("headroom", DEFAULT_HEADROOM))


def record(sizings: list[Sizing], target_rps: float | None, summary: Path | None) -> dict:
    """What sizing.json keeps beside the manifests: the numbers and where they came from."""
    return {
        "target_rps": target_rps,
        "summary": str(summary) if summary else None,
        "services": {
            s.service: {"replicas": s.replicas, "upper_bound": s.upper_bound,
                        "capacity_rps": s.capacity_rps, "note": s.note}
            for s in sizings
        },
    }  # fmt: skip
