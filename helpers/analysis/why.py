"""The why in numbers (notebook 08): per service one paired comparison — the tuned end, the
published end, each factor flipped alone (helpers.load.ablation) — made into what a reader
acts on: a table of factor × service whose every cell is an effect with its 95 % interval,
"no effect larger than ±x %", "undecided (budget spent)" or "not measured: why"; the two
ends side by side with both capacities; and summary.json's `ablation` section (the words:
helpers.analysis.why_sentences).

An effect is the paired change of CPU per request against the tuned end, bootstrapped over
rounds (helpers.intervals.paired_change); beside it, the paired differences of the client's
p99, of the working set and of the share of CFS periods throttled. Every interval is within
this run. Pure functions of comparisons, so they are tested on rounds given as data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from helpers import intervals
from helpers.intervals import NOT_MEASURED, Estimate
from helpers.load import stepping
from helpers.load.ablation_plan import PUBLISHED, TUNED, Configuration
from helpers.load.interleave import Comparison

MIB = 1024 * 1024
NOT_APPLICABLE = "—"


@dataclass(frozen=True)
class Figure:
    label: str
    unit: str
    scale: float  # from the window's field to the unit
    digits: int


FIGURES = {  # window fields whose paired difference is reported with CPU per request
    "p99_ms": Figure("client p99", "ms", 1.0, 2),
    "working_set_bytes": Figure("working set", "MiB", 1 / MIB, 1),
    "throttled_ratio": Figure("throttled periods", "pp", 100.0, 0),
}


@dataclass(frozen=True)
class Effect:
    """One cell of the table: an arm of a service's comparison held to its tuned end — or why
    there is none. `state`: effect | none | undecided | not measured | not applicable."""

    service: str
    label: str  # the arm: the factor's name, 'factor=value', or 'published'
    factor: str | None
    state: str
    text: str
    rate: int | None = None
    rounds: int = 0
    cpu_change: Estimate = NOT_MEASURED  # relative: 0.12 = 12 % more CPU per request
    figures: dict[str, Estimate] = field(default_factory=dict)  # paired differences
    reason: str = ""

    def matters(self, min_effect: float) -> bool:
        """An interval that excludes zero, around a change larger than ±min_effect."""
        return self.state == "effect" and abs(self.cpu_change.value) > min_effect

    def record(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "label": self.label,
            "factor": self.factor,
            "state": self.state,
            "text": self.text,
            "rate_rps": self.rate,
            "rounds": self.rounds,
            "cpu_change": self.cpu_change.record(),
            **{f"{name}_change": value.record() for name, value in self.figures.items()},
            **({"reason": self.reason} if self.reason else {}),
        }


def interval_words(value: Estimate, number: str = "{:+.0%}") -> str:
    """'95 %: +8% to +16%', or 'range of 2 rounds: …' where there are too few rounds for a
    95 % interval ('' when the figure was not repeated)."""
    if not value.repeated or not value.finite:
        return ""
    ends = f"{number.format(value.low)} to {number.format(value.high)}"
    if value.samples < intervals.MIN_SAMPLES:
        return f"range of {value.samples} {value.unit}: {ends}"
    return f"95 %: {ends}"


def change_text(change: Estimate) -> str:
    """'+12% (95 %: +8% to +16%)', '+12% (range of 2 rounds: …)', '+12% (not repeated)', or
    'no complete round'."""
    if change.samples == 0 or not math.isfinite(change.value):
        return "no complete round"
    if not change.repeated:
        return f"{change.value:+.0%} (not repeated)"
    return f"{change.value:+.0%} ({interval_words(change)})"


def effect_of(comparison: Comparison, label: str, factor: str | None, min_effect: float) -> Effect:
    """The arm's cell. Fewer than MIN_SAMPLES rounds have a range, not a 95 % interval: such
    an arm is undecided whatever its range says (as helpers.load.interleave never calls it
    settled)."""
    change = comparison.change(label)
    state = comparison.verdict(label, min_effect)
    if change.samples < intervals.MIN_SAMPLES:
        state = "undecided"
    if state == "undecided":
        text = f"undecided (budget spent): {change_text(change)}"
    else:
        text = comparison.sentence(label, min_effect)
    return Effect(
        comparison.name,
        label,
        factor,
        state,
        text,
        comparison.rate,
        len(comparison.complete_rounds()),
        change,
        {name: comparison.metric_change(label, name) for name in FIGURES},
    )


def effects(
    comparisons: Iterable[Comparison],
    configurations: Iterable[Configuration],
    skipped: Iterable[Mapping[str, Any]],
    min_effect: float,
) -> list[Effect]:
    """A cell for every flip of the plan and every service, in the plan's order."""
    by_service = {c.name: c for c in comparisons}
    not_measured = {(s["service"], s["label"]): s["reason"] for s in skipped}
    configurations = list(configurations)
    flips = dict.fromkeys((c.label, c.factor) for c in configurations if c.factor)
    services = dict.fromkeys(c.service for c in configurations)
    cells = []
    for label, factor in flips:
        for service in services:
            comparison = by_service.get(service)
            if comparison is not None and label in {a.label for a in comparison.arms}:
                cells.append(effect_of(comparison, label, factor, min_effect))
            elif (service, label) in not_measured:
                reason = not_measured[(service, label)]
                cells.append(
                    Effect(service, label, factor, "not measured", f"not measured: {reason}",
                           reason=reason)
                )  # fmt: skip
            else:
                cells.append(Effect(service, label, factor, "not applicable", NOT_APPLICABLE))
    return cells


def factor_table(cells: Iterable[Effect]) -> pd.DataFrame:
    """Factor (or further value) × service: each cell's text."""
    rows = [{"flipped": c.label, "service": c.service, "text": c.text} for c in cells]
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows).pivot(index="flipped", columns="service", values="text")
    order = list(dict.fromkeys(r["flipped"] for r in rows))
    return table.loc[order, list(dict.fromkeys(r["service"] for r in rows))]


def difference_text(value: Estimate, figure: Figure) -> str:
    if value.samples == 0 or not math.isfinite(value.value):
        return "n/a"
    scaled = value.scaled(figure.scale)
    number = f"{{:+.{figure.digits}f}}"
    return f"{number.format(scaled.value)} ({interval_words(scaled, number) or 'not repeated'})"


def held(comparison: Comparison, label: str) -> list[str]:
    """What the arm's windows miss of the objective at the comparison's rate (empty: it held
    it), judged like a step of those windows (helpers.load.stepping)."""
    taken = [r[label] for r in comparison.complete_rounds()]
    if not taken:
        return ["no complete round"]
    return stepping.Step(taken[0].target, comparison.rate, windows=taken).misses()


def details_table(comparisons: Iterable[Comparison]) -> pd.DataFrame:
    """Every arm: its CPU per request, p99 and working set, and their paired changes."""
    rows = []
    for c in comparisons:
        for arm in c.arms:
            reference = arm.label == c.arms[0].label
            misses = held(c, arm.label)
            row = {
                "service": c.name,
                "arm": arm.label,
                "rate [req/s]": c.rate,
                "CPU [µs/req]": c.cpu_us_per_request(arm.label).text(),
                "change": "reference" if reference else change_text(c.change(arm.label)),
                "held the objective": "yes" if not misses else "no: " + "; ".join(misses),
            }
            for name, figure in FIGURES.items():
                row[f"{figure.label} change [{figure.unit}]"] = (
                    "reference" if reference
                    else difference_text(c.metric_change(arm.label, name), figure)
                )  # fmt: skip
            rows.append(row)
    return pd.DataFrame(rows).set_index(["service", "arm"]) if rows else pd.DataFrame()


# -- the two ends ----------------------------------------------------------------------------


def capacity_text(record: Mapping[str, Any] | None) -> str:
    """A capacity as it may be said, with its interval ('n/a' when not searched)."""
    if not record:
        return "not searched"
    interval = Estimate.from_record(record.get("interval"))
    if not math.isfinite(interval.low):
        return str(record.get("display"))
    high = f"{interval.high:,.0f}" if math.isfinite(interval.high) else "∞"
    return f"{record.get('display')} (95 %: {interval.low:,.0f}–{high})"


def ends(
    comparisons: Iterable[Comparison],
    capacities: Mapping[str, Mapping[str, Any]],
    said: Mapping[str, Mapping[str, Any]],
    min_effect: float,
) -> dict[str, dict[str, Any]]:
    """Per service: the published end against the tuned, paired at the comparison's rate,
    both capacities with their intervals, what the published end did not honour, and whether
    each end held the objective at the rate."""
    found = {}
    for c in comparisons:
        if PUBLISHED not in {a.label for a in c.arms}:
            continue
        effect = effect_of(c, PUBLISHED, None, min_effect)
        published = said.get(f"{c.name}.{PUBLISHED}", {}).get("checked", {})
        found[c.name] = {
            "rate_rps": c.rate,
            "rounds": effect.rounds,
            "cpu_us_per_request": {
                end: c.cpu_us_per_request(end).record() for end in (TUNED, PUBLISHED)
            },
            "effect": effect.record(),
            "capacity": {end: capacities.get(end, {}).get(c.name) for end in (TUNED, PUBLISHED)},
            "published_not_honoured": {k: v for k, v in published.items() if v},
            "misses": {end: held(c, end) for end in (TUNED, PUBLISHED)},
        }
    return found


def ends_table(found: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    rows = []
    for service, end in found.items():
        cpu = {k: Estimate.from_record(v) for k, v in end["cpu_us_per_request"].items()}
        effect = end["effect"]
        rows.append(
            {
                "service": service,
                "rate [req/s]": end["rate_rps"],
                "tuned CPU [µs/req]": cpu[TUNED].text(),
                "published CPU [µs/req]": cpu[PUBLISHED].text(),
                "published vs tuned": effect["text"],
                **{
                    f"{figure.label} change [{figure.unit}]": difference_text(
                        Estimate.from_record(effect[f"{name}_change"]), figure
                    )
                    for name, figure in FIGURES.items()
                },
                "tuned capacity [req/s]": capacity_text(end["capacity"][TUNED]),
                "published capacity [req/s]": capacity_text(end["capacity"][PUBLISHED]),
                "published ignores": ", ".join(end["published_not_honoured"]) or "nothing",
            }
        )
    return pd.DataFrame(rows).set_index("service") if rows else pd.DataFrame()


# -- records ---------------------------------------------------------------------------------


def comparison_record(comparison: Comparison, min_effect: float) -> dict[str, Any]:
    """The comparison's own record (helpers.load.interleave) with every arm's p99, working
    set and throttled share, their paired changes, and what it missed of the objective."""
    record = comparison.record(min_effect)
    rounds = comparison.complete_rounds()
    for arm in comparison.arms:
        mine = record["arms"][arm.label]
        mine["misses"] = held(comparison, arm.label)
        for name in FIGURES:
            values = [float(getattr(r[arm.label], name)) for r in rounds]
            mine[name] = sum(values) / len(values) if values else None
            if arm is not comparison.arms[0]:
                mine[f"{name}_change"] = comparison.metric_change(arm.label, name).record()
    return record


def section(
    record: Mapping[str, Any],
    cells: Iterable[Effect],
    found_ends: Mapping[str, Any],
    sentences: Mapping[str, str],
    observations: Mapping[str, Any],
) -> dict[str, Any]:
    """summary.json's `ablation`: ablation.json's record (sizes, rates, capacities, what each
    instance said, what was skipped, every comparison), the table's cells, the ends, the
    sentences and the observations' numbers."""
    return {
        **dict(record),
        "effects": [c.record() for c in cells],
        "ends": dict(found_ends),
        "sentences": dict(sentences),
        "observations": dict(observations),
    }
