"""`make bench`, capacity and reproducibility: notebook 06's measurement from the terminal.

`capacity` runs what notebook 06 runs (helpers.load.capacity: the searches at once, then the
ladder with its floors) on one limited local stack at the quick profile's sizes and prints
the table and the headline ratios. `reproducibility` runs it twice, one stack after the
other, and prints how far each headline ratio moved between the two runs — the check that
intervals within one run cannot make: the study's goal is every ratio within ±15 %.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from helpers import paths, sizing
from helpers.analysis import capacity_report
from helpers.bench import compare_runs
from helpers.load import capacity
from helpers.serving.protocol import feature_ranges
from helpers.serving.stack import start_stack

SERVICES = ("python-api-pkl", "python-api-onnx", "go-api-onnx")


def measure(artifacts_dir: Path, run_dir: Path, profile: str = "quick") -> dict[str, float]:
    """One run of 06's capacity and ladder; returns its headline ratios by name."""
    size = sizing.for_profile(profile).capacity
    with start_stack(
        "local", run_dir=run_dir, artifacts_dir=artifacts_dir, instances=capacity.instances()
    ) as stack:
        if not stack.limits_enforced:
            print("  WARNING: limits NOT enforced — figures are not under the 0.5 CPU budget")
        ranges = feature_ranges(run_dir)
        found = capacity.search_all(stack, list(SERVICES), size, ranges, run_dir, _indent)
        ladder = capacity.ladder(stack, found, size, ranges, run_dir, _indent)
    print(capacity_report.capacity_table(found).to_string())
    floors = capacity_report.floors_section(found, ladder)
    print("  " + capacity_report.floors_sentence(floors))
    return compare_runs.headline_ratios(
        {"capacity": capacity_report.capacity_section(found), "floors": floors}
    )


def _indent(text: str) -> None:
    print(f"    {text}", flush=True)


def _run_dir(name: str) -> Path:
    return paths.RESULTS_DIR / f"bench-{name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def section(args: argparse.Namespace) -> None:
    """One run: the table and the headline ratios."""
    for name, value in measure(Path(args.artifacts_dir), _run_dir("capacity")).items():
        print(f"  {name:<42} {value:6.2f}")


def reproducibility(args: argparse.Namespace) -> None:
    """Two runs, one after the other: each headline ratio and how far it moved."""
    first = measure(Path(args.artifacts_dir), _run_dir("reproducibility-1"))
    second = measure(Path(args.artifacts_dir), _run_dir("reproducibility-2"))
    print("\n".join(compare_runs.compare(first, second)[0]))
