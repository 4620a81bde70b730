"""Two finished runs' headline ratios side by side: how far each moved between them.

    .venv/bin/python -m helpers.bench.compare_runs results/<run-a> results/<run-b>

The intervals of one run say how far its figures moved *within* it; whether a second run on
the same machine agrees is this command's question. It reads each run's summary.json (nothing
is measured) and prints the ratios meant to travel — capacities against each other, CPU per
request as a multiple of each service's no-op floor and of Go's — with their change between
the runs; the study's goal is every one within ±15 %. Exit status 1 when one is not.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from helpers.intervals import Estimate

TOLERANCE = 0.15
PAIRS = (
    ("go-api-onnx", "python-api-pkl"),
    ("go-api-onnx", "python-api-onnx"),
    ("python-api-onnx", "python-api-pkl"),
)


def headline_ratios(summary: dict[str, Any]) -> dict[str, float]:
    """The ratios of one run's summary.json that should travel between runs and machines."""
    rate = {s: (c.get("rate_rps") or math.nan) for s, c in summary.get("capacity", {}).items()}
    said = {
        f"capacity {top} / {bottom}": rate[top] / rate[bottom]
        for top, bottom in PAIRS
        if top in rate and bottom in rate
    }
    for service, row in summary.get("floors", {}).items():
        said[f"{service} CPU × its floor"] = Estimate.from_record(row["multiple_of_floor"]).value
        if service != "go-api-onnx":
            said[f"{service} CPU × Go's"] = Estimate.from_record(row.get("multiple_of_go")).value
    return said


def compare(first: dict[str, float], second: dict[str, float]) -> tuple[list[str], float]:
    """Lines of the table, and the largest change (relative) over the ratios both have."""
    lines = [f"  {'ratio':<42} {'run 1':>7} {'run 2':>7} {'change':>8}"]
    worst = 0.0
    for name, a in first.items():
        b = second.get(name, math.nan)
        change = b / a - 1 if a and math.isfinite(a) and math.isfinite(b) else math.nan
        if math.isfinite(change):
            worst = max(worst, abs(change))
        mark = "  ← beyond ±15 %" if math.isfinite(change) and abs(change) > TOLERANCE else ""
        lines.append(f"  {name:<42} {a:7.2f} {b:7.2f} {change:+8.1%}{mark}")
    verdict = "within" if worst <= TOLERANCE else "NOT within"
    lines.append(f"  largest change {worst:.1%}: {verdict} ±{TOLERANCE:.0%} between the two runs")
    return lines, worst


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m helpers.bench.compare_runs RUN_DIR_A RUN_DIR_B", file=sys.stderr)
        return 2
    ratios = []
    for run in args:
        path = Path(run) / "summary.json"
        if not path.exists():
            print(f"{path} not found: is {run} a finished run folder?", file=sys.stderr)
            return 2
        ratios.append(headline_ratios(json.loads(path.read_text())))
    lines, worst = compare(*ratios)
    print("\n".join(lines))
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    raise SystemExit(main())
