"""The post's memory observation, explained (notebook 07): each service's memory against the
128 MiB limit, by the post's measure (usage, page cache counted) and by the working set (what
the kernel's OOM killer and cAdvisor's panel go by), in the load test and in the ablation.
Pure functions of tables (helpers.analysis.metrics, helpers.analysis.why), tested on made-up
numbers.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from helpers.analysis.observations import pct
from helpers.analysis.why import is_true

MIB = 1024 * 1024
NINETY = 0.90  # the post: "always above 90 % of 128 MB"


def memory_figures(timeseries: pd.DataFrame, limit_bytes: float | None) -> pd.DataFrame:
    """Per service: peak usage (page cache counted, the post's panel) and peak working set,
    as MiB and as a share of the limit; the page cache's share of usage at the usage peak;
    and the share of samples at or above 90 % of the limit by each measure."""
    usage = timeseries[timeseries["metric"] == "memory_usage_bytes"]
    working = timeseries[timeseries["metric"] == "memory_working_set_bytes"]
    rows = {}
    for service, mine in usage.groupby("service", sort=False):
        u = mine.set_index("elapsed_s")["value"]
        w = working[working["service"] == service].set_index("elapsed_s")["value"]
        at_peak = u.idxmax()
        cache = (u.loc[at_peak] - w.get(at_peak, math.nan)) / u.loc[at_peak]
        limit = limit_bytes or math.nan
        rows[service] = {
            "peak_usage_mib": u.max() / MIB,
            "peak_working_set_mib": w.max() / MIB if not w.empty else math.nan,
            "peak_usage_of_limit": u.max() / limit,
            "peak_working_set_of_limit": w.max() / limit if not w.empty else math.nan,
            "page_cache_share_at_peak": cache,
            "time_usage_above_90": float((u >= NINETY * limit).mean()),
            "time_working_set_above_90": float((w >= NINETY * limit).mean()) if not w.empty
            else math.nan,
        }  # fmt: skip
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("service")


def memory_sentence(figures: pd.DataFrame, mode: str, limit_bytes: float | None) -> str:
    if figures.empty:
        return f"{mode}: no memory series."
    limit = f"{limit_bytes / MIB:.0f} MiB" if limit_bytes else "no limit"
    parts = []
    for service, row in figures.iterrows():
        parts.append(
            f"{service} usage peaked at {row['peak_usage_mib']:.0f} MiB "
            f"({pct(row['peak_usage_of_limit'])} of {limit}), its working set at "
            f"{row['peak_working_set_mib']:.0f} MiB ({pct(row['peak_working_set_of_limit'])}); "
            f"page cache was {pct(row['page_cache_share_at_peak'])} of the usage at its peak; "
            f"at ≥ 90 % of the limit {pct(row['time_usage_above_90'])} of the time by usage, "
            f"{pct(row['time_working_set_above_90'])} by working set"
        )
    return f"{mode.capitalize()}: " + "; ".join(parts) + "."


def memory_in_ablation(
    medians_table: pd.DataFrame, effect_rows: pd.DataFrame, limit_bytes: float | None
) -> tuple[dict[str, Any], str]:
    """Memory of each end configuration (the highest peak over its rates), and per service
    the flip that moved its working set most."""
    numbers: dict[str, Any] = {}
    said = []
    if medians_table.empty or "memory_working_set_peak_bytes" not in medians_table:
        return numbers, "The ablation measured no memory."
    limit = limit_bytes or math.nan
    ends = medians_table[medians_table["factor"] == ""]
    for (service, end), group in ends.groupby(["service", "end"], sort=False):
        working = float(group["memory_working_set_peak_bytes"].max())
        usage = float(
            group.get("memory_usage_peak_bytes", group["memory_working_set_peak_bytes"]).max()
        )
        numbers.setdefault(service, {})[end] = {
            "peak_working_set_bytes": working,
            "peak_usage_bytes": usage,
            "working_set_of_limit": working / limit,
        }
    for service, by_end in numbers.items():
        ends_said = ", ".join(
            f"{end} {v['peak_working_set_bytes'] / MIB:.0f} MiB ({pct(v['working_set_of_limit'])})"
            for end, v in by_end.items()
        )
        text = f"{service} peak working set {ends_said}"
        moved = (
            effect_rows[
                (effect_rows["service"] == service)
                & (effect_rows["metric"] == "memory_working_set_peak_bytes")
            ]
            if not effect_rows.empty
            else effect_rows
        )
        if not moved.empty:
            top = moved.loc[moved["change"].abs().idxmax()]
            by_end[top["end"]]["largest_flip"] = {
                "factor": top["factor"],
                "value": top["value"],
                "change_bytes": top["change"],
            }
            text += (
                f"; the largest move: {top['factor']}={top['value']} from the {top['end']} end, "
                f"{top['change'] / MIB:+.1f} MiB"
                + (" (within the spread)" if is_true(top["within_spread"]) else "")
            )
        said.append(text)
    limit_said = f"{limit_bytes / MIB:.0f} MiB" if limit_bytes else "no limit"
    return numbers, f"In the ablation (limit {limit_said}): " + "; ".join(said) + "."
