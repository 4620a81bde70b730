"""What serving each zoo model costs (notebook 09), as tables, a figure, zoo.json sections and
computed sentences: each model against logistic regression on the same service (paired
within rounds), the heaviest model's capacity and its cold start. Intervals are within this
run; a capacity that is a bound is said as one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from helpers.analysis import capacity_report, sizing_report
from helpers.analysis.plots import COLOURS, save
from helpers.intervals import Estimate
from helpers.load.interleave import Comparison
from helpers.load.search import Search
from helpers.load.stepping import P95_MS
from helpers.serving.instances import SERVICE_NAMES
from helpers.zoo.serving import NOT_STARTED, REFERENCE, STOPPED


def serving_table(
    compared: Sequence[Comparison], not_served: Sequence[Mapping[str, str]], min_effect: float
) -> pd.DataFrame:
    """A row per (model, service): CPU per request and p95 with their intervals, and the
    paired change against logistic regression on that service (helpers.zoo.paired: the
    windows' own CPU); pairs not served say why."""
    problems = {row["instance"]: row["reason"] for row in not_served}
    rows = []
    for comparison in compared:
        for arm in comparison.arms:
            reference = arm.label == REFERENCE
            rows.append(
                {
                    "model": arm.label,
                    "service": comparison.name,
                    "CPU per request [µs]": comparison.cpu_us_per_request(arm.label).text(),
                    f"× {REFERENCE}": ""
                    if reference
                    else comparison.multiple(arm.label, comparison.arms[0].label).text(
                        "{:.2f}", "×"
                    ),
                    "CPU change": "" if reference else comparison.sentence(arm.label, min_effect),
                    "p95 [ms]": comparison.p95_ms(arm.label).text("{:.1f}"),
                    "p95 change [ms]": ""
                    if reference
                    else comparison.metric_change(arm.label, "p95_ms").text("{:+.1f}"),
                    "rounds": len(comparison.complete_rounds()),
                    "problem": problems.get(arm.target, ""),
                }
            )
    measured = {(r["model"], r["service"]) for r in rows}
    blank = dict.fromkeys(rows[0] if rows else ["model", "service", "problem"], "")
    rows += [
        blank | {"model": row["model"], "service": row["service"], "problem": row["reason"]}
        for row in not_served
        if (row["model"], row["service"]) not in measured
    ]
    frame = pd.DataFrame(rows)
    order = list(dict.fromkeys([REFERENCE, *frame["model"]]))
    ranks = frame["model"].map(order.index) * len(SERVICE_NAMES) + frame["service"].map(
        SERVICE_NAMES.index
    )
    return frame.iloc[ranks.argsort(kind="stable")].set_index(["model", "service"])


def serving_figure(compared: Sequence[Comparison], rate: int, path: Path | None = None):
    """CPU per request of each model, a bar per service, with its 95 % interval (log scale)."""
    models = list(dict.fromkeys(a.label for c in compared for a in c.arms))
    figure, ax = plt.subplots(figsize=(10, 4.2))
    width = 0.8 / max(len(compared), 1)
    for offset, comparison in enumerate(compared):
        labels = [a.label for a in comparison.arms]
        estimates = [comparison.cpu_us_per_request(label) for label in labels]
        xs = [models.index(label) + (offset - (len(compared) - 1) / 2) * width for label in labels]
        values = [e.value if e.finite else math.nan for e in estimates]
        errors = [
            [max(0.0, e.value - e.low) if e.finite else 0.0 for e in estimates],
            [max(0.0, e.high - e.value) if e.finite else 0.0 for e in estimates],
        ]
        ax.bar(xs, values, width=width, yerr=errors, capsize=2,
               color=COLOURS.get(comparison.name), label=comparison.name)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xticks(range(len(models)), models, rotation=15, fontsize=8)
    ax.set_xlabel("model")
    ax.set_ylabel("CPU per request [µs], log scale")
    ax.set_title(f"What a request costs, per model and service, at {rate} req/s under 0.5 CPU")
    ax.grid(alpha=0.3, axis="y", which="both")
    ax.legend(fontsize=8)
    figure.tight_layout()
    save(figure, path)
    return figure


def serving_sentence(
    compared: Sequence[Comparison], not_served: Sequence[Mapping[str, str]], min_effect: float
) -> str:
    """Per service: its costliest model as a multiple of logistic regression's CPU per request,
    and the models no more than ±min_effect apart from it; then what was not served."""
    said = []
    for comparison in compared:
        others = [a.label for a in comparison.arms if a.label != REFERENCE]
        multiples = {
            label: comparison.multiple(label, comparison.arms[0].label) for label in others
        }
        finite = {label: m for label, m in multiples.items() if math.isfinite(m.value)}
        if not finite:
            continue
        costliest = max(finite, key=lambda label: finite[label].value)
        text = (
            f"{comparison.name}'s costliest model is {costliest} at "
            f"{finite[costliest].text('{:.1f}', '×')}"
        )
        alike = [label for label in others if comparison.verdict(label, min_effect) == "none"]
        if alike:
            text += f"; {', '.join(alike)} no more than ±{min_effect:.0%} apart from it"
        said.append(text)
    rate = compared[0].rate if compared else 0
    sentence = (
        f"At {rate} req/s, each model's CPU per request against {REFERENCE}'s on the same "
        f"service (paired within rounds): " + "; ".join(said) + "."
        if said
        else "No zoo model was measured against logistic regression."
    )
    for stage, said_as in ((NOT_STARTED, "Not served"), (STOPPED, "Stopped while measured")):
        rows = [r for r in not_served if r.get("stage", NOT_STARTED) == stage]
        if rows:
            listed = "; ".join(f"{r['model']} by {r['service']} ({r['reason']})" for r in rows)
            sentence += f" {said_as}: {listed}."
    return sentence


def serving_section(
    compared: Sequence[Comparison],
    not_served: Sequence[Mapping[str, str]],
    rate: int,
    min_effect: float,
) -> dict[str, Any]:
    """zoo.json's `serving`: per service its rounds and, per model, CPU per request and p95
    with their intervals, the paired change and multiple of logistic regression's CPU per
    request, its verdict and the paired p95 change; and what was not served."""
    records = []
    for comparison in compared:
        arms = {}
        for arm in comparison.arms:
            figures = {
                "target": arm.target,
                "cpu_us_per_request": comparison.cpu_us_per_request(arm.label).record(),
                "p95_ms": comparison.p95_ms(arm.label).record(),
            }
            if arm is not comparison.arms[0]:
                figures |= {
                    "change": comparison.change(arm.label).record(),
                    "multiple": comparison.multiple(arm.label, comparison.arms[0].label).record(),
                    "verdict": comparison.verdict(arm.label, min_effect),
                    "sentence": comparison.sentence(arm.label, min_effect),
                    "p95_change_ms": comparison.metric_change(arm.label, "p95_ms").record(),
                }
            arms[arm.label] = figures
        records.append(
            {"service": comparison.name, "rate": comparison.rate,
             "rounds": len(comparison.complete_rounds()), "arms": arms}
        )  # fmt: skip
    return {
        "rate_rps": rate,
        "reference": REFERENCE,
        "telemetry": "off in every instance",
        "cpu": "each window's own CPU over its answers (helpers.zoo.paired)",
        "min_effect": min_effect,
        "comparisons": records,
        "not_served": list(not_served),
    }


# -- the heaviest model -----------------------------------------------------------------------


def capacity_table(found: Sequence[Search]) -> pd.DataFrame:
    return capacity_report.capacity_table(list(found)).rename_axis("instance")


def cold_start_table(cold: Mapping[str, Any], models: Mapping[str, str]) -> pd.DataFrame:
    """Notebook 07's cold-start table, with the model each instance serves."""
    table = sizing_report.cold_start_table(dict(cold))
    table.insert(0, "model", [models.get(name, "") for name in table.index])
    return table


def heaviest_sentence(
    model: str, found: Sequence[Search], cold: Mapping[str, Any], models: Mapping[str, str]
) -> str:
    """The heaviest model's capacity per service, said with its bounds, and its cold start
    against logistic regression's on the same service."""
    held = ", ".join(f"{s.target.split('.')[0]} {s.display()}" for s in found)
    text = (
        f"The heaviest model by single-row latency, {model}, holds the objective "
        f"(p95 ≤ {P95_MS:g} ms) at, in req/s: {held or 'not measured'}."
    )
    starts = []
    for name, figures in cold.items():
        if models.get(name) != model:
            continue
        service = name.split(".")[0]
        total = Estimate.from_record(figures["total_s"]).text("{:.2f}", " s")
        reference = cold.get(service)
        beside = (
            f" against {Estimate.from_record(reference['total_s']).value:.2f} s with {REFERENCE}"
            if reference
            else ""
        )
        starts.append(f"{service} {total}{beside}")
    if starts:
        text += " From spawn to its first correct answer (median): " + "; ".join(starts) + "."
    return text


def heaviest_section(
    model: str, found: Sequence[Search], cold: Mapping[str, Any], models: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "model": model,
        "by": "scikit-learn's single-row median latency",
        "capacity": {s.target: s.as_record() for s in found},
        "cold_start": {name: {"model": models.get(name, "")} | dict(c) for name, c in cold.items()},
    }
