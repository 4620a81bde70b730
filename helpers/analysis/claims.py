"""The seed post's qualitative claims, each checked against our own numbers by a function.

The notebook never types a verdict: each function below takes the measured per-service table
(`helpers.analysis.metrics.service_metrics`) or time series and returns a Verdict computed
from them, so a re-run with other numbers can overturn a claim. The claims are paraphrased
from the seed: Go + ONNX Runtime needs the least memory and CPU, FastAPI + pickle the most;
Go's p95 latency stays flat while the load ramps up; every service keeps up with the ramp.
A claim about a service that stopped during the phase is inconclusive: its figures after
that moment were not measured.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
CLAIMED_ORDER = ("go-api-onnx", "python-api-onnx", "python-api-pkl")  # least → most
STABLE_FACTOR = 2.0  # p95 at the end of the ramp within 2× of its start counts as stable
KEPT_UP_RATIO = 0.95  # served peak RPM ≥ 95 % of the planned peak counts as keeping up


@dataclass(frozen=True)
class Verdict:
    claim: str
    verdict: str  # HOLDS | FAILS | INCONCLUSIVE
    evidence: str


def _stopped(per_service: pd.DataFrame, services: tuple[str, ...] = CLAIMED_ORDER) -> str:
    """'' if every service ran to the end, else the sentence(s) saying who stopped when."""
    if "stopped" not in per_service:
        return ""
    said = [per_service["stopped"].get(s) for s in services if s in per_service.index]
    return "; ".join(s for s in said if isinstance(s, str) and s)


def _ranking(per_service: pd.DataFrame, column: str, what: str, fmt: str) -> Verdict:
    claim = f"{what}: {' < '.join(CLAIMED_ORDER)}"
    stopped = _stopped(per_service)
    if stopped:
        return Verdict(claim, INCONCLUSIVE, f"not measured to the end: {stopped}")
    values = {s: per_service[column].get(s, math.nan) for s in CLAIMED_ORDER}
    evidence = ", ".join(f"{s} {format(v, fmt)}" for s, v in values.items())
    if any(not math.isfinite(v) for v in values.values()):
        return Verdict(claim, INCONCLUSIVE, f"missing values: {evidence}")
    observed = tuple(sorted(values, key=values.get))
    verdict = HOLDS if observed == CLAIMED_ORDER else FAILS
    return Verdict(claim, verdict, f"{evidence} → observed order {' < '.join(observed)}")


def memory_ranking(per_service: pd.DataFrame) -> Verdict:
    """Peak working set (MiB): the memory the kernel cannot take back."""
    table = per_service.assign(mib=per_service["peak_memory_working_set_bytes"] / (1024 * 1024))
    return _ranking(table, "mib", "peak memory working set [MiB]", ".1f")


def cpu_ranking(per_service: pd.DataFrame) -> Verdict:
    """CPU per request (ms), not CPU in total: a throttled service serves less and would look
    cheap by total CPU alone."""
    return _ranking(per_service, "cpu_ms_per_request", "CPU per request [ms]", ".3f")


def p95_stability(
    timeseries: pd.DataFrame,
    stopped: str = "",
    service: str = "go-api-onnx",
    factor: float = STABLE_FACTOR,
) -> Verdict:
    """Median server p95 in the last quarter of the ramp vs the first quarter, per service."""
    claim = (
        f"{service}'s p95 stays stable while the load ramps up (last/first quarter ≤ {factor:g}×)"
    )
    if stopped:
        return Verdict(claim, INCONCLUSIVE, f"not measured to the end: {stopped}")
    data = timeseries[timeseries["metric"] == "server_latency_p95_seconds"]
    ratios = {}
    for name, group in data.groupby("service"):
        span = group["elapsed_s"].max()
        if not span or len(group) < 4:
            continue
        first = group[group["elapsed_s"] <= span / 4]["value"].median()
        last = group[group["elapsed_s"] >= 3 * span / 4]["value"].median()
        if first > 0 and math.isfinite(last):
            ratios[name] = (first * 1000, last * 1000, last / first)
    evidence = "; ".join(
        f"{s} {a:.2f} → {b:.2f} ms ({r:.1f}×)" for s, (a, b, r) in sorted(ratios.items())
    )
    if service not in ratios:
        return Verdict(claim, INCONCLUSIVE, f"no p95 series for {service}. {evidence}")
    verdict = HOLDS if ratios[service][2] <= factor else FAILS
    return Verdict(claim, verdict, evidence)


def keeps_up(
    timeseries: pd.DataFrame,
    stopped: str = "",
    ratio: float = KEPT_UP_RATIO,
    reached: dict[str, float] | None = None,
) -> Verdict:
    """Served RPM against the planned RPM (same rate window) over the last quarter of the ramp,
    where the load is highest: the median of served / planned per service. A service that
    stopped did not keep up."""
    claim = f"every service keeps up with the ramp (served ≥ {ratio:.0%} of planned RPM at the top)"
    if stopped:
        return Verdict(claim, FAILS, stopped)
    served = timeseries[timeseries["metric"] == "server_requests_per_minute"]
    planned = timeseries[timeseries["metric"] == "planned_requests_per_minute"]
    # Both series sit on the same query grid; rounding absorbs float noise in the timestamps.
    served = served.assign(at=served["elapsed_s"].round(1))
    planned = planned.assign(at=planned["elapsed_s"].round(1))[["service", "at", "value"]]
    merged = served.merge(planned, on=["service", "at"], suffixes=("_served", "_planned"))
    shares = {}
    for service, group in merged.groupby("service"):
        top = group[group["elapsed_s"] >= 0.75 * group["elapsed_s"].max()]
        top = top[top["value_planned"] > 0]
        if len(top):
            shares[service] = float((top["value_served"] / top["value_planned"]).median())
    evidence = (
        "served / planned requests per minute over the top quarter of the ramp: "
        + ", ".join(f"{s} {v:.1%}" for s, v in sorted(shares.items()))
    )
    if reached:  # the summary table's "reached": k6's whole-phase count against its plan
        evidence += "; requests sent / planned over the phase: " + ", ".join(
            f"{s} {v:.1%}" for s, v in sorted(reached.items())
        )
    missing = [s for s in CLAIMED_ORDER if s not in shares]
    if missing:
        return Verdict(claim, INCONCLUSIVE, f"no RPM series for {', '.join(missing)}. {evidence}")
    laggards = [s for s, v in shares.items() if v < ratio]
    if laggards:
        return Verdict(claim, FAILS, f"{evidence}; below: {', '.join(laggards)}")
    return Verdict(claim, HOLDS, evidence)


def check_all(per_service: pd.DataFrame, timeseries: pd.DataFrame) -> pd.DataFrame:
    """The four claims as a table (claim, verdict, evidence), in the seed's order."""
    verdicts = [
        memory_ranking(per_service),
        cpu_ranking(per_service),
        p95_stability(timeseries, _stopped(per_service, ("go-api-onnx",))),
        keeps_up(
            timeseries,
            _stopped(per_service),
            reached=per_service["reached_ratio"].to_dict()
            if "reached_ratio" in per_service
            else None,
        ),
    ]
    return pd.DataFrame([asdict(v) for v in verdicts])
