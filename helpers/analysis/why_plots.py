"""The figures of notebook 08: each factor's paired effect with its interval, the ends'
capacities, and the post's memory and p95 panels redrawn from a run. Each takes the
analysis' cells and records (helpers.analysis.why) or plain tables (helpers.analysis.metrics),
one colour per service (plots.COLOURS), labels axes with units, and saves a PNG."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogFormatter

from helpers.analysis.plots import COLOURS, MIB, save
from helpers.analysis.why import FIGURES, Effect
from helpers.intervals import Estimate


def effects_chart(
    cells: Iterable[Effect], title: str, figure_name: str | None = None, path: Path | None = None
) -> plt.Figure:
    """One group of bars per flip, a bar per service: the paired change against the tuned end
    with its 95 % interval as a whisker — of CPU per request in per cent, or of a window
    figure (`figure_name`, helpers.analysis.why.FIGURES) in its unit. Hatched: undecided or
    no effect; a service not measured (or the factor not its) has no bar."""
    cells = list(cells)
    flips = list(dict.fromkeys(c.label for c in cells))
    services = list(dict.fromkeys(c.service for c in cells))
    figure, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(flips) + 3), 4.5))
    width = 0.8 / max(1, len(services))
    scale, unit, label = 100.0, "%", "CPU per request"
    if figure_name is not None:
        shown = FIGURES[figure_name]
        scale, unit, label = shown.scale, shown.unit, shown.label
    for i, service in enumerate(services):
        by_flip = {c.label: c for c in cells if c.service == service}
        x = np.arange(len(flips)) + (i - (len(services) - 1) / 2) * width
        for position, flip in zip(x, flips, strict=True):
            cell = by_flip.get(flip)
            if cell is None or cell.state in ("not measured", "not applicable"):
                continue
            value = cell.cpu_change if figure_name is None else cell.figures[figure_name]
            if not math.isfinite(value.value):
                continue
            shown_value = value.scaled(scale)
            whisker = None
            if value.repeated and value.finite:
                whisker = [[shown_value.value - shown_value.low],
                           [shown_value.high - shown_value.value]]  # fmt: skip
            ax.bar(position, shown_value.value, width, color=COLOURS.get(service),
                   yerr=whisker, capsize=2, alpha=1.0 if cell.state == "effect" else 0.45,
                   hatch=None if cell.state == "effect" else "//")  # fmt: skip
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(flips)), flips, rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("factor flipped to its published value (from the tuned end)")
    ax.set_ylabel(f"change of {label} [{unit}]")
    ax.grid(alpha=0.3, axis="y")
    handles = [Patch(color=COLOURS.get(s), label=s) for s in services]
    handles.append(Patch(facecolor="white", edgecolor="grey", hatch="//",
                         label="undecided or no effect"))  # fmt: skip
    ax.legend(handles=handles, fontsize=8)
    ax.set_title(title)
    figure.tight_layout()
    save(figure, path)
    return figure


def end_capacities(
    capacities: Mapping[str, Mapping[str, Mapping[str, Any]]],
    seed_rps: int,
    path: Path | None = None,
) -> plt.Figure:
    """Capacity of each end per service with its 95 % interval, the seed's peak as a line; a
    lower bound (generator-bound, stopped by the budget) is hatched."""
    figure, ax = plt.subplots(figsize=(8, 4.5))
    ends = list(capacities)
    services = list(dict.fromkeys(s for by in capacities.values() for s in by))
    width = 0.8 / max(1, len(ends))
    for i, end in enumerate(ends):
        x = np.arange(len(services)) + (i - (len(ends) - 1) / 2) * width
        for position, service in zip(x, services, strict=True):
            record = capacities[end].get(service) or {}
            value = record.get("rate_rps") or 0
            interval = Estimate.from_record(record.get("interval"))
            whisker = None
            if value and math.isfinite(interval.low):
                high = interval.high if math.isfinite(interval.high) else value
                whisker = [[value - interval.low], [high - value]]
            (bar,) = ax.bar(position, value, width, yerr=whisker, capsize=3,
                            color="#1f77b4" if end == "tuned" else "#d62728",
                            label=f"{end} configuration" if position == x[0] else None)  # fmt: skip
            if record.get("bound") != "service":
                bar.set_hatch("//")
            ax.annotate(str(record.get("display", "n/a")), (position, value), ha="center",
                        va="bottom", fontsize=8)  # fmt: skip
    ax.axhline(seed_rps, color="black", ls=":", lw=1, label=f"the seed's peak ({seed_rps} req/s)")
    ax.set_xticks(np.arange(len(services)), services)
    ax.set_ylabel("capacity [req/s] (p95 ≤ 25 ms, errors < 0.1 %)")
    ax.set_title("Capacity under 0.5 CPU / 128 MiB: the published vs the tuned configuration")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    save(figure, path)
    return figure


def memory_views(
    timeseries: pd.DataFrame, limit_bytes: float | None, title: str, path: Path | None = None
) -> plt.Figure:
    """A panel per service: cgroup memory usage (the post's panel, page cache counted) and
    the working set over the run, against the limit and 90 % of it."""
    services = list(dict.fromkeys(timeseries["service"]))
    figure, axes = plt.subplots(1, max(1, len(services)), figsize=(5 * max(1, len(services)), 4),
                                squeeze=False, sharey=True)  # fmt: skip
    for ax, service in zip(axes[0], services, strict=False):
        mine = timeseries[timeseries["service"] == service]
        for metric, style, label in (
            ("memory_usage_bytes", "-", "usage (the post's panel)"),
            ("memory_working_set_bytes", "--", "working set"),
        ):
            line = mine[mine["metric"] == metric].sort_values("elapsed_s")
            ax.plot(line["elapsed_s"], line["value"] / MIB, style, color=COLOURS.get(service),
                    label=label)  # fmt: skip
        if limit_bytes:
            ax.axhline(limit_bytes / MIB, color="black", ls="--", lw=1, label="limit")
            ax.axhline(0.9 * limit_bytes / MIB, color="grey", ls=":", lw=1, label="90 % of it")
        ax.set_title(service, fontsize=10)
        ax.set_xlabel("time since the phase started [s]")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("memory [MiB]")
    figure.suptitle(title)
    figure.tight_layout()
    save(figure, path)
    return figure


def p95_views(series_5s: pd.DataFrame, title: str, path: Path | None = None) -> plt.Figure:
    """A panel per service: p95 at 5 s resolution from the post's buckets and from the
    study's, and k6's p95 since the start; the post's first bucket (5 ms) as a line."""
    services = list(dict.fromkeys(series_5s["service"]))
    figure, axes = plt.subplots(1, max(1, len(services)), figsize=(5 * max(1, len(services)), 4),
                                squeeze=False, sharey=True)  # fmt: skip
    for ax, service in zip(axes[0], services, strict=False):
        mine = series_5s[series_5s["service"] == service]
        for metric, style, colour, label in (
            ("server_latency_p95_seconds_seed_buckets", "-", COLOURS.get(service),
             "server, the post's buckets"),
            ("server_latency_p95_seconds", "-.", "black", "server, the study's buckets"),
            ("client_latency_p95_seconds", "--", "grey", "k6 (since the start)"),
        ):  # fmt: skip
            line = mine[mine["metric"] == metric].sort_values("elapsed_s")
            ax.plot(line["elapsed_s"], line["value"] * 1000, style, color=colour, label=label)
        ax.axhline(5, color="black", ls=":", lw=1, label="the post's first bucket (5 ms)")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.4)))
        ax.set_title(service, fontsize=10)
        ax.set_xlabel("time since the phase started [s]")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("p95 latency [ms] (log)")
    figure.suptitle(title)
    figure.tight_layout()
    save(figure, path)
    return figure
