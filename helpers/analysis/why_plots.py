"""The figures of notebook 07: the ablation's effects, the ends' capacities, and the post's
memory and p95 panels redrawn from a run. Each takes plain tables (helpers.analysis.why,
helpers.analysis.metrics), one colour per service (plots.COLOURS), labels axes with units,
and saves a PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogFormatter

from helpers.analysis.plots import COLOURS, MIB, save
from helpers.analysis.why import METRICS, is_true


def effects_chart(
    effect_rows: pd.DataFrame, metric: str, title: str, path: Path | None = None
) -> plt.Figure:
    """A row of panels per end, a column per rate: one bar per factor (and further value) per
    service, the flip's change of `metric` relative to its end in per cent; hatched = within
    the spread over repeats; a service not measured has no bar."""
    chosen = effect_rows[effect_rows["metric"] == metric]
    ends = list(dict.fromkeys(chosen["end"])) or ["tuned"]
    labels = list(dict.fromkeys(chosen["rate_label"])) or ["seed peak"]
    figure, axes = plt.subplots(
        len(ends), len(labels), figsize=(7 * len(labels), 4.2 * len(ends)), squeeze=False
    )
    info = METRICS[metric]
    for row, end in enumerate(ends):
        for col, rate_label in enumerate(labels):
            ax = axes[row][col]
            mine = chosen[(chosen["end"] == end) & (chosen["rate_label"] == rate_label)]
            _effect_bars(ax, mine)
            rates = " / ".join(
                f"{r}" for r in dict.fromkeys(mine.drop_duplicates("service")["rate"])
            )
            ax.set_xlabel(f"factor flipped from the {end} end")
            ax.set_ylabel(f"change of {info.label} [%]")
            ax.set_title(f"from the {end} end, {rate_label} ({rates or 'n/a'} req/s)", fontsize=10)
    figure.suptitle(title)
    figure.tight_layout()
    save(figure, path)
    return figure


def _effect_bars(ax: plt.Axes, mine: pd.DataFrame) -> None:
    flips = list(dict.fromkeys(f"{f}={v}" for f, v in zip(mine["factor"], mine["value"],
                                                         strict=True)))  # fmt: skip
    services = list(dict.fromkeys(mine["service"]))
    width = 0.8 / max(1, len(services))
    for i, service in enumerate(services):
        by_flip = {
            f"{r.factor}={r.value}": r for r in mine[mine["service"] == service].itertuples()
        }
        x = np.arange(len(flips)) + (i - (len(services) - 1) / 2) * width
        heights = [100 * by_flip[f].relative if f in by_flip else np.nan for f in flips]
        bars = ax.bar(x, np.nan_to_num(heights), width, color=COLOURS.get(service))
        for bar, flip in zip(bars, flips, strict=True):
            if flip not in by_flip:
                bar.set_visible(False)
            elif is_true(by_flip[flip].within_spread):
                bar.set_hatch("//")
                bar.set_alpha(0.5)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(flips)), flips, rotation=30, ha="right", fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    handles = [Patch(color=COLOURS.get(s), label=s) for s in services]
    handles.append(Patch(facecolor="white", edgecolor="grey", hatch="//",
                         label="within the spread"))  # fmt: skip
    ax.legend(handles=handles, fontsize=8)


def end_capacities(
    capacities: dict[str, dict[str, dict]], seed_rps: int, path: Path | None = None
) -> plt.Figure:
    """Capacity of each end configuration per service, with the seed's peak as a line; a
    lower bound (generator-bound, stopped by the budget) is hatched."""
    figure, ax = plt.subplots(figsize=(8, 4.5))
    ends = list(capacities)
    services = list(dict.fromkeys(s for by in capacities.values() for s in by))
    width = 0.8 / max(1, len(ends))
    for i, end in enumerate(ends):
        x = np.arange(len(services)) + (i - (len(ends) - 1) / 2) * width
        records = [capacities[end].get(s, {}) for s in services]
        values = [r.get("rate_rps") or 0 for r in records]
        bars = ax.bar(x, values, width, label=f"{end} configuration",
                      color="#1f77b4" if end == "tuned" else "#d62728")  # fmt: skip
        for bar, record in zip(bars, records, strict=True):
            if record.get("bound") != "service":
                bar.set_hatch("//")
            ax.annotate(str(record.get("display", "n/a")), (bar.get_x() + bar.get_width() / 2,
                        bar.get_height()), ha="center", va="bottom", fontsize=8)  # fmt: skip
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
