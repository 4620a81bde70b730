"""The why, in numbers: effect sizes of the ablation, their tables and summary.json's section
(notebook 07; their sentences: helpers.analysis.why_sentences). Pure functions of tables — the
ablation's steps (helpers.load.ablation), the load test's per-service numbers and time series
(helpers.analysis.metrics) — so every number is computed, and tested on made-up ones.

Effect of a flip = the flipped configuration minus the end it was flipped from, per service,
rate and metric, each side the median over repeats. An effect no larger than the spread of
either side over its repeats (max − min) is said to be "within the spread": the measurement
cannot tell it from noise. With one repeat the spread is unknown and the sentence says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

MIB = 1024 * 1024
KEYS = ["service", "end", "factor", "value", "rate_label"]
EFFECT_COLUMNS = [
    *KEYS, "rate", "metric", "base", "flipped", "change", "relative", "spread",
    "within_spread", "repeats",
]  # fmt: skip


@dataclass(frozen=True)
class Metric:
    label: str
    unit: str  # as said after a number: "µs", "ms", "pp" (percentage points), "MiB"
    scale: float = 1.0  # from the step's column to the unit
    digits: int = 2


METRICS: dict[str, Metric] = {
    "service_cpu_us_per_request": Metric("CPU per request", "µs", digits=0),
    "p95_ms": Metric("client p95", "ms"),
    "p99_ms": Metric("client p99", "ms"),
    "server_p95_ms": Metric("server p95", "ms"),
    "server_p99_ms": Metric("server p99", "ms"),
    "memory_working_set_peak_bytes": Metric("peak working set", "MiB", 1 / MIB, 1),
    "memory_usage_peak_bytes": Metric("peak memory usage", "MiB", 1 / MIB, 1),
    "throttled_ratio": Metric("throttled periods", "pp", 100.0, 0),
    "error_rate": Metric("errors", "pp", 100.0, 2),
}
# -- effect sizes ----------------------------------------------------------------------------


def normalised(rows: pd.DataFrame) -> pd.DataFrame:
    frame = rows.copy()
    for key in ("factor", "value"):
        frame[key] = frame[key].fillna("").astype(str)
    return frame


def medians(rows: pd.DataFrame, metrics: Iterable[str] = METRICS) -> pd.DataFrame:
    """Per configuration and rate: the median of every metric over repeats, its spread
    (max − min) and how many repeats there were."""
    if rows.empty:
        return pd.DataFrame(columns=[*KEYS, "rate", "repeats"])
    frame = normalised(rows)
    metrics = [m for m in metrics if m in frame]
    grouped = frame.groupby(KEYS, sort=False)
    middle = grouped[metrics].median()
    spread = (grouped[metrics].max() - grouped[metrics].min()).add_suffix("_spread")
    out = pd.concat([middle, spread], axis=1)
    out["repeats"] = grouped.size()
    out["rate"] = grouped["rate"].first()
    return out.reset_index()


def effects(rows: pd.DataFrame, metrics: Iterable[str] = METRICS) -> pd.DataFrame:
    """One row per (service, end, factor, value, rate, metric): the end's and the flip's
    medians, the change, the relative change, the larger of the two spreads and whether the
    change is within it (None: one repeat, unknown)."""
    table = medians(rows, metrics)
    metrics = [m for m in metrics if m in table]
    ends = table[table["factor"] == ""].set_index(["service", "end", "rate_label"])
    out = []
    for _, flip in table[table["factor"] != ""].iterrows():
        key = (flip["service"], flip["end"], flip["rate_label"])
        if key not in ends.index:
            continue
        base = ends.loc[key]
        for metric in metrics:
            b, f = float(base[metric]), float(flip[metric])
            change = f - b
            spread = max(float(base[f"{metric}_spread"]), float(flip[f"{metric}_spread"]))
            known = min(int(base["repeats"]), int(flip["repeats"])) >= 2
            out.append(
                {
                    "service": flip["service"],
                    "end": flip["end"],
                    "factor": flip["factor"],
                    "value": flip["value"],
                    "rate_label": flip["rate_label"],
                    "rate": int(flip["rate"]),
                    "metric": metric,
                    "base": b,
                    "flipped": f,
                    "change": change,
                    "relative": change / b if b else math.nan,
                    "spread": spread if known else math.nan,
                    "within_spread": (abs(change) <= spread) if known else None,
                    "repeats": min(int(base["repeats"]), int(flip["repeats"])),
                }
            )
    return pd.DataFrame(out, columns=EFFECT_COLUMNS)


def effect_table(effect_rows: pd.DataFrame, metrics: Iterable[str] | None = None) -> pd.DataFrame:
    """The effects side by side for reading: a row per service, factor, end, value and rate;
    per metric the change in its unit and in per cent ('~' marks a change within the
    spread)."""
    if effect_rows.empty:
        return pd.DataFrame()
    chosen = list(metrics or dict.fromkeys(effect_rows["metric"]))
    rows = []
    for key, group in effect_rows.groupby([*KEYS, "rate"], sort=False):
        row = dict(zip([*KEYS, "rate"], key, strict=True))
        by_metric = group.set_index("metric")
        for metric in chosen:
            if metric not in by_metric.index:
                continue
            e, m = by_metric.loc[metric], METRICS[metric]
            mark = "~" if is_true(e["within_spread"]) else ""
            row[f"{m.label} [{m.unit}]"] = f"{mark}{signed(e['change'] * m.scale, m)}"
            row[f"{m.label} [%]"] = percent(e["relative"]) if m.unit != "pp" else ""
        rows.append(row)
    table = pd.DataFrame(rows).set_index([*KEYS, "rate"])
    return table.loc[:, (table != "").any()]


def is_true(flag: Any) -> bool:
    """A verdict that may be True, False, None or NaN (unknown): only True is true."""
    return flag is not None and not (isinstance(flag, float) and math.isnan(flag)) and bool(flag)


def ends_table(medians_table: pd.DataFrame, metrics: Iterable[str] | None = None) -> pd.DataFrame:
    """The end configurations side by side in reading units: a row per service, end and rate,
    per metric the median over repeats (and ± half its spread when there were repeats)."""
    ends = medians_table[medians_table["factor"] == ""]
    rows = []
    for _, row in ends.iterrows():
        out = {"service": row["service"], "end": row["end"], "rate [req/s]": int(row["rate"])}
        for name in metrics or METRICS:
            if name not in row:
                continue
            m = METRICS[name]
            unit = "%" if m.unit == "pp" else m.unit
            text = f"{row[name] * m.scale:.{m.digits}f}"
            if row["repeats"] >= 2:
                text += f" ±{row[f'{name}_spread'] * m.scale / 2:.{m.digits}f}"
            out[f"{m.label} [{unit}]"] = text
        rows.append(out)
    return (
        pd.DataFrame(rows).set_index(["service", "end", "rate [req/s]"]) if rows else pd.DataFrame()
    )


def signed(value: float, metric: Metric) -> str:
    """A change in its metric's unit and digits, with its sign ('n/a' when not finite)."""
    if not math.isfinite(value):
        return "n/a"
    return f"{value:+.{metric.digits}f}"


def percent(relative: float) -> str:
    """A relative change as a signed percentage, or a factor ('×35') when it is large."""
    if not math.isfinite(relative):
        return "n/a"
    if relative >= 2:  # "+3400 %" reads worse than "×35"
        return f"×{relative + 1:.0f}" if relative >= 9 else f"×{relative + 1:.1f}"
    return f"{100 * relative:+.0f}"


# -- summary.json ------------------------------------------------------------------------------


def section(
    effect_rows: pd.DataFrame,
    medians_table: pd.DataFrame,
    skipped: Iterable[Mapping[str, Any]],
    capacities: Mapping[str, Any],
    rates: Mapping[str, Any],
    size: Mapping[str, Any],
    sentences: Mapping[str, str],
    observations: Mapping[str, Any],
    started: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """summary.json's `ablation` section: per service, its end configurations (medians per
    rate, capacity, what it did not honour) and per factor the effect at each end and rate
    (or why it was not measured); the rates, the sentences and the observations' numbers."""
    services: dict[str, Any] = {}
    ends = medians_table[medians_table["factor"] == ""] if not medians_table.empty else None
    for record in started:
        if record.get("factor") is None:
            entry = services.setdefault(record["service"], {"ends": {}, "factors": {}})
            entry["ends"].setdefault(record["end"], {})["not_honoured"] = record["not_honoured"]
            entry["ends"][record["end"]]["gomaxprocs"] = record.get("gomaxprocs")
    if ends is not None:
        for _, row in ends.iterrows():
            entry = services.setdefault(row["service"], {"ends": {}, "factors": {}})
            end = entry["ends"].setdefault(row["end"], {})
            end.setdefault("rates", {})[row["rate_label"]] = {
                "rate_rps": int(row["rate"]),
                "repeats": int(row["repeats"]),
                **{m: row[m] for m in METRICS if m in row},
                **{f"{m}_spread": row[f"{m}_spread"] for m in METRICS if f"{m}_spread" in row},
            }
    for end, by_service in capacities.items():
        for service, record in by_service.items():
            entry = services.setdefault(service, {"ends": {}, "factors": {}})
            entry["ends"].setdefault(end, {})["capacity"] = dict(record)
    if not effect_rows.empty:
        for _, e in effect_rows.iterrows():
            entry = services.setdefault(e["service"], {"ends": {}, "factors": {}})
            where = entry["factors"].setdefault(e["factor"], {}).setdefault(e["end"], {})
            at = where.setdefault(e["value"], {}).setdefault(
                e["rate_label"], {"rate_rps": int(e["rate"])}
            )
            at[e["metric"]] = {
                "base": e["base"],
                "flipped": e["flipped"],
                "change": e["change"],
                "relative": e["relative"],
                "spread": e["spread"],
                "within_spread": e["within_spread"],
                "repeats": int(e["repeats"]),
            }
    for skip in skipped:
        entry = services.setdefault(skip["service"], {"ends": {}, "factors": {}})
        where = entry["factors"].setdefault(skip["factor"], {}).setdefault(skip["end"], {})
        where[skip["value"]] = {"not_measured": skip["reason"]}
    return {
        "size": dict(size),
        "rates": dict(rates),
        "services": services,
        "sentences": dict(sentences),
        "observations": dict(observations),
    }
