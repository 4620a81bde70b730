"""The why in words (notebook 07): a sentence per factor, every number in it computed from the
effect sizes of helpers.analysis.why, and tested on made-up numbers.

Effects no larger than the spread of either side over its repeats are said to be "within the
spread"; with one repeat the sentence says the spread is unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from helpers.analysis.why import METRICS, is_true, percent, signed

# What a factor's sentence names: CPU and the tail for all; throttling where threads decide.
SENTENCE_METRICS = {
    "default": ("service_cpu_us_per_request", "p99_ms"),
    "gomaxprocs": ("service_cpu_us_per_request", "p99_ms", "throttled_ratio"),
    "ort_threads": ("service_cpu_us_per_request", "p99_ms", "throttled_ratio"),
    "ort_spinning": ("service_cpu_us_per_request", "p99_ms", "throttled_ratio"),
    "zipmap": ("service_cpu_us_per_request", "p99_ms", "memory_working_set_peak_bytes"),
}


def change_phrase(effect: Mapping[str, Any]) -> str:
    """'CPU per request +38 µs (+9 %)', with the spread verdict when it is known:
    'client p99 +0.10 ms (+2 %, within the spread)'."""
    metric = METRICS[effect["metric"]]
    value = signed(effect["change"] * metric.scale, metric)
    notes = []
    if metric.unit != "pp":
        relative = percent(effect["relative"])
        if relative != "n/a":
            notes.append(relative if relative.startswith("×") else f"{relative} %")
    else:
        notes.append(f"from {effect['base'] * metric.scale:.{metric.digits}f} %")
    if is_true(effect.get("within_spread")):
        notes.append("within the spread")
    text = f"{metric.label} {value} {metric.unit}"
    return f"{text} ({', '.join(notes)})" if notes else text


def rate_phrase(rate_label: str, rate: int) -> str:
    return f"at the seed's peak ({rate} req/s)" if rate_label == "seed peak" else (
        f"at the heavier rate ({rate} req/s)"
    )  # fmt: skip


def factor_sentence(
    name: str,
    title: str,
    values: Mapping[str, str],
    effect_rows: pd.DataFrame,
    skipped: Iterable[Mapping[str, Any]] = (),
    preface: str = "",
) -> str:
    """What flipping factor `name` did, per end and rate, to each service — every number from
    `effect_rows`; the services it could not be measured on, with the reason."""
    said = [f"**{name}** ({title}; published: {values['published']}, tuned: {values['tuned']})."]
    if preface:
        said.append(preface)
    mine = effect_rows[effect_rows["factor"] == name] if not effect_rows.empty else effect_rows
    metrics = SENTENCE_METRICS.get(name, SENTENCE_METRICS["default"])
    unknown_spread = False
    if not mine.empty:
        for (end, value, rate_label, rate), group in mine.groupby(
            ["end", "value", "rate_label", "rate"], sort=False
        ):
            parts = []
            for service, by_service in group.groupby("service", sort=False):
                picked = by_service.set_index("metric", drop=False)
                phrases = [change_phrase(picked.loc[m]) for m in metrics if m in picked.index]
                parts.append(f"{service} {', '.join(phrases)}")
                unknown_spread |= bool((by_service["repeats"] < 2).any())
            setting = values.get(value, value)
            said.append(
                f"From the {end} end {rate_phrase(rate_label, rate)}, {setting} instead: "
                + "; ".join(parts)
                + "."
            )
    else:
        said.append("Not measured on any service in this run.")
    missing = {}
    for skip in skipped:
        if skip.get("factor") == name:
            missing.setdefault(skip["service"], skip["reason"])
    if missing:
        said.append(
            "Not measured: " + "; ".join(f"{s} ({why})" for s, why in missing.items()) + "."
        )
    if unknown_spread:
        said.append("One repeat: the spread over repeats is unknown.")
    return " ".join(said)


def gomaxprocs_preface(started: Iterable[Mapping[str, Any]]) -> str:
    """The GOMAXPROCS the Go service logged under each value, and whether published and tuned
    are the same setting on this host."""
    logged: dict[str, set[int]] = {}
    cpus: set[int] = set()
    for record in started:
        if record.get("service") != "go-api-onnx" or record.get("gomaxprocs") is None:
            continue
        value = record["value"] if record.get("factor") == "gomaxprocs" else record["end"]
        logged.setdefault(value, set()).add(int(record["gomaxprocs"]))
        if record.get("num_cpu") is not None:
            cpus.add(int(record["num_cpu"]))
    if not logged:
        return "go-api-onnx logged no GOMAXPROCS: the values cannot be compared."
    said = ", ".join(f"{v}: {'/'.join(map(str, sorted(n)))}" for v, n in logged.items())
    text = f"GOMAXPROCS as go-api-onnx logged it — {said}"
    if cpus:
        text += f" (the host's CPUs as Go sees them: {'/'.join(map(str, sorted(cpus)))})"
    published, tuned = logged.get("published"), logged.get("tuned")
    if published and tuned and published == tuned:
        text += (
            f". Published and tuned are the same setting here (GOMAXPROCS "
            f"{'/'.join(map(str, sorted(tuned)))} either way: the host count equals the "
            "cgroup-aware default, which rounds the 0.5 CPU quota up to at least 2), so their "
            "difference below is an A/A comparison — this measurement's own noise"
        )
    elif published and tuned:
        text += ". Published and tuned differ here"
    return text + "."
