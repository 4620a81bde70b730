"""`make bench`, capacity section: a limited local stack, every service searched, table and ratios.

The same search as notebook 06 (helpers.load.capacity), printed to the terminal with the
ratios the study quotes, so a change to a service can be judged in one command.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from helpers import paths
from helpers.load.capacity import ratio, run, table
from helpers.serving.stack import start_stack

BENCH_BUDGET_S = 13 * 60  # + stack start/stop: the bench section stays under 15 minutes


def section(args: argparse.Namespace) -> None:
    """A limited local stack, every service searched, table and ratios."""
    run_dir = paths.RESULTS_DIR / f"bench-capacity-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    with start_stack("local", run_dir=run_dir, artifacts_dir=Path(args.artifacts_dir)) as stack:
        if not stack.limits_enforced:
            print("  WARNING: limits NOT enforced — capacities are not under the 0.5 CPU budget")
        results = run(stack, run_dir / "capacity", budget_s=BENCH_BUDGET_S)
    print(table(results).to_string(float_format=lambda v: f"{v:.3g}"))
    for top, bottom in (("go-api-onnx", "python-api-onnx"), ("python-api-onnx", "python-api-pkl")):
        print(f"  {top} / {bottom}: {ratio(results, top, bottom)}")
    print(f"  steps and logs: {run_dir / 'capacity'}")
