"""What serving each zoo model costs (notebook 08): the table and the sentence, from the rows
`helpers.zoo.serving.serve_models` measured and the heaviest model's capacity."""

from __future__ import annotations

import math

import pandas as pd

from helpers.load.capacity import ServiceCapacity


def table(serving: pd.DataFrame) -> pd.DataFrame:
    """CPU µs per request, a row per model and a column per service ('—' where not served)."""
    served = serving[serving["problem"].fillna("") == ""]
    shown = served.pivot(index="model", columns="service", values="cpu_us_per_request").round(0)
    return shown.reindex(index=list(dict.fromkeys(serving["model"])))


def problems(serving: pd.DataFrame) -> list[str]:
    """Every (model, service) that was not measured, and why."""
    failed = serving[serving["problem"].fillna("") != ""]
    return [f"{row.service} with {row.model}: {row.problem}" for row in failed.itertuples()]


def finding(serving: pd.DataFrame, heavy: list[ServiceCapacity], heaviest: str) -> str:
    served = table(serving)
    said = []
    for model, row in served.iterrows():
        values = {s: v for s, v in row.items() if isinstance(v, float) and math.isfinite(v)}
        if "python-api-pkl" in values and len(values) > 1:
            cheapest = min(values, key=values.get)
            factor = values["python-api-pkl"] / values[cheapest]
            said.append(f"{model}: pickle {values['python-api-pkl']:.0f} µs vs {cheapest} "
                        f"{values[cheapest]:.0f} µs per request ({factor:.1f}×)")  # fmt: skip
        elif values:
            said.append(f"{model}: only {', '.join(values)} served it")
    capacity = ", ".join(f"{r.service} {r.display} req/s" for r in heavy)
    text = (
        "; ".join(said) + f". The heaviest model, {heaviest}, holds the objective at: {capacity}."
    )
    missing = problems(serving)
    return text + (f" Not measured: {'; '.join(missing)}." if missing else "")
