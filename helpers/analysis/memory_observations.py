"""The post's memory observation, explained (notebook 08): each service's memory against the
128 MiB limit, by the post's measure (usage, page cache counted) and by the working set (what
the kernel's OOM killer and cAdvisor's panel go by), in the load test and in the paired
comparisons. Pure functions of tables (helpers.analysis.metrics) and of comparisons
(helpers.load.interleave), tested on made-up numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from helpers import intervals
from helpers.analysis.observations import pct
from helpers.analysis.why import interval_words
from helpers.intervals import Estimate
from helpers.load.ablation_plan import PUBLISHED, TUNED
from helpers.load.interleave import Comparison

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


def memory_in_comparisons(
    comparisons: Iterable[Comparison], limit_bytes: float | None
) -> tuple[dict[str, Any], str]:
    """Per service: each end's working set in the paired comparison (mean over rounds, with
    its interval) against the limit, and the flip that moved it most (a paired difference
    with its interval)."""
    numbers: dict[str, Any] = {}
    said = []
    limit = limit_bytes or math.nan
    for comparison in comparisons:
        rounds = comparison.complete_rounds()
        if not rounds:
            continue
        mine: dict[str, Any] = {}
        for end in (TUNED, PUBLISHED):
            if end not in rounds[0]:
                continue
            working = intervals.mean([r[end].working_set_bytes for r in rounds], "rounds")
            mine[end] = {
                "working_set_bytes": working.record(),
                "working_set_of_limit": working.value / limit,
            }
        moves = {
            a.label: comparison.metric_change(a.label, "working_set_bytes")
            for a in comparison.arms[1:]
        }
        text = f"{comparison.name} working set " + ", ".join(
            f"{end} {_mib(v['working_set_bytes'], pct(v['working_set_of_limit']))}"
            for end, v in mine.items()
        )
        finite = {k: v for k, v in moves.items() if math.isfinite(v.value)}
        if finite:
            label, move = max(finite.items(), key=lambda item: abs(item[1].value))
            mine["largest_move"] = {"arm": label, "change_bytes": move.record()}
            shown = move.scaled(1 / MIB)
            text += f"; the largest move: {label}, {shown.value:+.1f} MiB" + (
                f" ({interval_words(shown, '{:+.1f}')})"
                if move.excludes(0.0)
                else " (its interval includes zero)"
            )
        numbers[comparison.name] = mine
        said.append(text)
    if not said:
        return numbers, "The comparisons measured no memory."
    limit_said = f"{limit_bytes / MIB:.0f} MiB" if limit_bytes else "no limit"
    return numbers, (
        f"In the paired comparisons (limit {limit_said}, working set at the end of each "
        f"window): " + "; ".join(said) + "."
    )


def _mib(record: dict[str, Any], of_limit: str) -> str:
    """'102 MiB, 80 % of the limit (95 %: 101 to 103)'."""
    shown = Estimate.from_record(record).scaled(1 / MIB)
    words = interval_words(shown, "{:.0f}")
    return f"{shown.value:.0f} MiB, {of_limit} of the limit" + (f" ({words})" if words else "")
