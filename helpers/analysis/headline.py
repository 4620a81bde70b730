"""The report's answer on one page (notebook 00_summary): per service what it delivers under
the budget and what it costs, and one computed sentence per finding — read from summary.json,
which notebooks 05–08 filled, so the page is re-made from the run folder alone."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from helpers.analysis import findings
from helpers.analysis.cost import money

MIB = 1024 * 1024


def _phase_values(summary: dict[str, Any], service: str, key: str) -> dict[str, float]:
    by_mode = summary.get("services", {}).get(service, {})
    return {mode: values.get(key) for mode, values in by_mode.items() if values.get(key)}


def _plans(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return summary.get("cost", {}).get("plans", [])


def table(summary: dict[str, Any]) -> pd.DataFrame:
    """A row per service: capacity, CPU per request at capacity, peak working set, $/million."""
    services = list(summary.get("capacity") or summary.get("services") or {})
    plans = _plans(summary)
    first_target = min((p["target_rps"] for p in plans), default=None)
    rows = {}
    for service in services:
        capacity = summary.get("capacity", {}).get(service, {})
        memory = _phase_values(summary, service, "peak_memory_working_set_bytes")
        plan = next(
            (p for p in plans if p["service"] == service and p["target_rps"] == first_target),
            None,
        )
        spread = capacity.get("spread")
        rows[service] = {
            "capacity [req/s]": capacity.get("display", "not measured"),
            "CPU at capacity [µs/req]": _round(capacity.get("service_cpu_us_per_request")),
            "its spread over repeats": f"±{spread / 2:.0%}" if spread is not None else "n/a",
            "peak working set [MiB]": _round(max(memory.values()) / MIB) if memory else None,
            f"$ per million at {first_target:,.0f} req/s"
            if first_target
            else "$ per million": money(plan["dollars_per_million"], plan["upper_bound"])
            if plan
            else "not measured",
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("service")


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 1)


def memory(summary: dict[str, Any]) -> str:
    peaks = {
        service: max(values.values()) / MIB
        for service in summary.get("services", {})
        if (values := _phase_values(summary, service, "peak_memory_working_set_bytes"))
    }
    if not peaks:
        return "No memory was measured in this run (notebook 05 did not run)."
    ranked = sorted(peaks.items(), key=lambda item: item[1])
    smallest = ranked[0][1]
    parts = [f"{s} {v:.0f} MiB ({v / smallest:.1f}×)" for s, v in ranked]
    return f"Peak working set of 128 MiB: {', '.join(parts)}."


def sentences(summary: dict[str, Any]) -> list[str]:
    """The findings in the order a reader asks them."""
    said = []
    if not summary.get("limits_enforced", True):
        said.append("⚠️ Limits were NOT enforced: these numbers are not under the study's budget.")
    for event in summary.get("service_exits", []):
        said.append(f"⚠️ {event['service']} stopped during the load test ({event['how']}).")
    capacity = summary.get("capacity", {})
    if capacity:
        shown = sorted(capacity.items(), key=lambda item: item[1].get("rate_rps") or 0)
        said.append(
            "Capacity under 0.5 CPU / 128 MiB at p95 ≤ 25 ms: "
            + ", ".join(f"{s} {c['display']} req/s" for s, c in shown)
            + "."
        )
    said.append(memory(summary))
    plans = pd.DataFrame(_plans(summary))
    if not plans.empty:
        said.append("In money: " + findings.dollars(plans))
    spreads = {f"{s} CPU at capacity": c.get("spread") for s, c in capacity.items()}
    spreads = {k: v for k, v in spreads.items() if v is not None}
    if spreads:
        said.append(findings.unstable(spreads))
    return said
