"""The why in words (notebook 08): at most one sentence per factor that matters — its interval
excludes zero around a change larger than the stated minimum effect — every number in it
computed from the paired comparisons (helpers.analysis.why); a sentence for the two ends;
and what GOMAXPROCS each setting gave the Go service. Everything else is in the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from helpers.analysis.why import FIGURES, Effect, capacity_text, interval_words
from helpers.intervals import NOT_MEASURED, Estimate
from helpers.load.ablation_plan import PUBLISHED, TUNED
from helpers.load.factors import Factor

GO = "go-api-onnx"


def figure_phrase(name: str, value: Estimate) -> str:
    """'client p99 +1.20 ms (95 %: +0.80 to +1.60)' when the interval excludes zero, else ''."""
    if not value.excludes(0.0):
        return ""
    figure = FIGURES[name]
    shown = value.scaled(figure.scale)
    number = f"{{:+.{figure.digits}f}}"
    return (
        f"{figure.label} {number.format(shown.value)} {figure.unit} "
        f"({interval_words(shown, number)})"
    )


def value_of(label: str) -> str:
    """The value an arm stands for: 'published', or the further value of 'factor=value'."""
    return label.split("=", 1)[1] if "=" in label else PUBLISHED


def factor_sentence(factor: Factor, cells: Iterable[Effect], min_effect: float) -> str | None:
    """One sentence for the factor, naming every service on which one of its values matters
    (None when none does: the table says the rest)."""
    mine = [c for c in cells if c.factor == factor.name and c.matters(min_effect)]
    if not mine:
        return None
    by_value: dict[str, list[str]] = {}
    for cell in mine:
        parts = [f"{cell.service} {cell.text} CPU per request"]
        for name in ("p99_ms", "throttled_ratio"):
            phrase = figure_phrase(name, cell.figures.get(name, NOT_MEASURED))
            parts += [phrase] if phrase else []
        by_value.setdefault(value_of(cell.label), []).append(", ".join(parts))
    said = [
        f"{factor.setting(value).label} instead of {factor.tuned.label}: " + "; ".join(parts)
        for value, parts in by_value.items()
    ]
    return f"**{factor.name}**, {factor.title} — " + " — ".join(said) + "."


def ends_sentence(found: Mapping[str, Mapping[str, Any]]) -> str:
    """The published configuration against the tuned one, per service, with both capacities."""
    if not found:
        return "The two ends were not compared in this run."
    parts = []
    for service, end in found.items():
        text = f"{service} at {end['rate_rps']:,} req/s, CPU per request {end['effect']['text']}"
        capacities = end["capacity"]
        if capacities.get(TUNED) or capacities.get(PUBLISHED):
            text += (
                f", capacity tuned {capacity_text(capacities.get(TUNED))} req/s, published "
                f"{capacity_text(capacities.get(PUBLISHED))} req/s"
            )
        ignored = end.get("published_not_honoured") or {}
        if ignored:
            text += f", its published end ignoring {', '.join(ignored)}"
        parts.append(text)
    return (
        "The post's published configuration against the tuned one, paired within rounds: "
        + "; ".join(parts)
        + "."
    )


def gomaxprocs_preface(said: Mapping[str, Mapping[str, Any]]) -> str:
    """The GOMAXPROCS the Go service logged under each value, and whether published and tuned
    are the same setting on this host (then the flip is an A/A comparison)."""
    logged: dict[str, set[int]] = {}
    cpus: set[int] = set()
    for record in said.values():
        if record.get("service") != GO or record.get("gomaxprocs") is None:
            continue
        value = record["value"] if record.get("factor") == "gomaxprocs" else record["end"]
        logged.setdefault(value, set()).add(int(record["gomaxprocs"]))
        if record.get("num_cpu") is not None:
            cpus.add(int(record["num_cpu"]))
    if not logged:
        return f"{GO} logged no GOMAXPROCS: the values cannot be compared."
    shown = ", ".join(f"{v}: {'/'.join(map(str, sorted(n)))}" for v, n in logged.items())
    text = f"GOMAXPROCS as {GO} logged it — {shown}"
    if cpus:
        text += f" (the host's CPUs as Go sees them: {'/'.join(map(str, sorted(cpus)))})"
    published, tuned = logged.get(PUBLISHED), logged.get(TUNED)
    if published and tuned and published == tuned:
        text += (
            f". Published and tuned are the same setting here (GOMAXPROCS "
            f"{'/'.join(map(str, sorted(tuned)))} either way: the host's count equals the "
            "cgroup-aware default, which rounds the 0.5 CPU quota up to at least 2), so the "
            "gomaxprocs flip is an A/A comparison — this measurement's own noise"
        )
    elif published and tuned:
        text += ". Published and tuned differ here"
    return text + "."
