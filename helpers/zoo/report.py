"""The zoo in tables, sentences and a plot (notebook 09), from what `helpers.zoo.classifiers` built:
does each model convert, at what parity per input type, and which services can load its files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.model import parity
from helpers.zoo.classifiers import INPUT_TYPE_ORDER, ZooModel


def conversion_table(models: Sequence[ZooModel]) -> pd.DataFrame:
    """One row per model: does it convert, which input type is served, what was repaired."""
    rows = []
    for zm in models:
        served = zm.served
        reasons = "; ".join(
            f"{a.input_type}: {a.error}" for a in zm.attempts if not a.converted and a.error
        )
        rows.append(
            {
                "model": zm.spec.name,
                "estimator": zm.estimator,
                "test_accuracy": zm.result.test_accuracy,
                "converts": served is not None,
                "served_input_type": served.input_type if served else None,
                "served_parity_passed": served.passed if served else None,
                "repairs": ", ".join(served.repairs) if served and served.repairs else "",
                "why_not": reasons,
            }
        )
    return pd.DataFrame(rows).set_index("model")


def parity_summary(models: Sequence[ZooModel]) -> pd.DataFrame:
    """One row per (model, input type): label mismatches and max |Δp| over all row sets, and
    the same on the split-threshold rows alone (where float32 flips tree decisions)."""
    rows = []
    for zm in models:
        for a in zm.attempts:
            row: dict[str, Any] = {
                "model": zm.spec.name,
                "input_type": a.input_type,
                "converts": a.converted,
                "repairs": ", ".join(a.repairs),
                "plain_skl2onnx_error": a.plain_error or "",
                "error": a.error or "",
                "rows_checked": None,
                "label_mismatches": a.label_mismatches,
                "max_abs_proba_diff": a.max_abs_proba_diff,
                "threshold_rows_mismatches": None,
                "passed": a.passed,
                "served": zm.served is a,
            }
            if a.parity is not None:
                row["rows_checked"] = int(a.parity["rows"].sum())
                on = a.parity[a.parity["row_set"] == "rows on split thresholds"]
                row["threshold_rows_mismatches"] = (
                    int(on["label_mismatches"].sum()) if len(on) else None
                )
            rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "input_type"])


def parity_detail(models: Sequence[ZooModel]) -> pd.DataFrame:
    """Every (model, input type, row set) row: the same table as notebook 02's, per model."""
    tables = [
        a.parity.assign(model=zm.spec.name).rename(columns={"onnx_file": "input_type"})
        for zm in models
        for a in zm.attempts
        if a.parity is not None
    ]
    if not tables:
        return pd.DataFrame()
    return pd.concat(tables, ignore_index=True).set_index(["model", "input_type", "row_set"])


# --- sentences -----------------------------------------------------------------------------


def conversion_finding(models: Sequence[ZooModel]) -> str:
    converted = [zm.spec.name for zm in models if zm.served is not None]
    refused = [zm for zm in models if zm.served is None]
    repaired = [zm.spec.name for zm in models if zm.served is not None and zm.served.repairs]
    sentence = f"{len(converted)} of {len(models)} models convert to an ONNX graph that loads"
    if repaired:
        sentence += f" ({', '.join(repaired)} only with this study's repairs of skl2onnx)"
    if refused:
        why = "; ".join(f"{zm.spec.name}: {zm.attempts[0].error.rstrip('.')}" for zm in refused)
        sentence += f"; {len(refused)} {'does' if len(refused) == 1 else 'do'} not — {why}"
    return sentence + "."


def float32_finding(models: Sequence[ZooModel]) -> str:
    """Which models' float32 graphs flip decisions, and what the double graph did about it."""
    parts = []
    for zm in models:
        by_type = {a.input_type: a for a in zm.attempts}
        single, double = by_type.get("float"), by_type.get("double")
        if single is None or not single.converted or single.passed:
            continue
        text = (
            f"{zm.spec.name}'s float32 graph disagrees with the pickle on "
            f"{single.label_mismatches} labels (max |Δp| {single.max_abs_proba_diff:.3g})"
        )
        if double is not None and double.passed:
            text += f"; its double graph agrees on all {int(double.parity['rows'].sum())} rows"
        elif double is not None and double.converted:
            text += (
                f"; its double graph still differs on {double.label_mismatches} labels "
                f"(max |Δp| {double.max_abs_proba_diff:.3g})"
            )
        elif double is not None:
            text += f"; no double graph ({double.error})"
        parts.append(text)
    worse = [
        f"{zm.spec.name} (float32 graph passes, double graph differs on "
        f"{a.label_mismatches} labels, max |Δp| {a.max_abs_proba_diff:.3g})"
        for zm in models
        for a in zm.attempts
        if a.input_type == "double"
        and a.converted
        and not a.passed
        and any(b.input_type == "float" and b.passed for b in zm.attempts)
    ]
    if worse:
        parts.append(f"double inputs make it worse for {', '.join(worse)}")
    if not parts:
        return "Every converted model's float32 graph agrees with the pickle on every row set."
    return "; ".join(parts) + "."


# --- plot ----------------------------------------------------------------------------------


def plot_parity(summary: pd.DataFrame) -> Any:
    """Max |Δp| per model and input type (log scale), the tolerance drawn across; bars of
    graphs that flip labels are red and say how many."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    converted = summary[summary["converts"]].reset_index()
    fig, ax = plt.subplots(figsize=(10, 4))
    models = list(dict.fromkeys(converted["model"]))
    width = 0.8 / len(INPUT_TYPE_ORDER)
    floor = 1e-17  # exact agreement (0) drawn at the bottom of the log axis
    colors = dict(zip(INPUT_TYPE_ORDER, ("tab:blue", "tab:green"), strict=True))
    for offset, input_type in enumerate(INPUT_TYPE_ORDER):
        part = converted[converted["input_type"] == input_type].set_index("model")
        xs = [models.index(m) + (offset - 0.5) * width for m in part.index]
        values = part["max_abs_proba_diff"].clip(lower=floor)
        flips = [int(n) for n in part["label_mismatches"]]
        shade = ["tab:red" if n else colors[input_type] for n in flips]
        bars = ax.bar(xs, values, width=width, color=shade)
        ax.bar_label(bars, labels=[f"{n} flips" if n else "" for n in flips], fontsize=8)
    line = ax.axhline(parity.TOLERANCE, color="grey", linestyle="--")
    handles = [Patch(color=c, label=f"{t} input") for t, c in colors.items()]
    handles += [Patch(color="tab:red", label="labels differ")]
    line.set_label(f"tolerance {parity.TOLERANCE:g}")
    handles.append(line)
    ax.set_yscale("log")
    ax.set_xticks(range(len(models)), models)
    ax.set_xlabel("model")
    ax.set_ylabel("max |Δp| vs the pickle (probability, log scale)")
    ax.set_title("Parity per model and ONNX input type (red: labels differ)")
    ax.legend(handles=handles, fontsize=8)
    fig.tight_layout()
    return fig


def serving_plan(models: Sequence[ZooModel]) -> dict[str, tuple[Path, list[str]]]:
    """Per model, its artifacts folder and the services whose runtime its files fit: the pickle
    service always, the two ONNX services when a graph is served."""
    return {
        zm.spec.name: (
            zm.artifacts_dir,
            ["python-api-pkl", *(["python-api-onnx", "go-api-onnx"] if zm.served else [])],
        )
        for zm in models
    }


def heaviest(cost_table: pd.DataFrame) -> str:
    """The model scikit-learn takes longest to score one row with."""
    return str(cost_table["sklearn_median_us"].astype(float).idxmax())
