"""`make bench`, read-limits section: what the Python services' defences against abusive
clients cost a request — the services as they are against the same services before the read
limits, the load shedder and the client-abort rule (issue 20), side by side on one stack.

Both run in the services' own environments; the earlier code is taken from git history and put
first on the import path (`PYTHONSAFEPATH` keeps the working directory off it), so each
instance runs its own commit's `iris_serving`. Windows alternate (helpers.load.interleave): the
change of CPU per request is paired within rounds, with its 95 % interval. The goal: within the
noise of the services as they were.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from helpers import paths, sizing
from helpers.load import capacity, interleave, windows
from helpers.serving.instances import variant
from helpers.serving.protocol import feature_ranges
from helpers.serving.stack import start_stack

# The last commit before the read limits (issue 20): the Python services as they were.
BEFORE = "3ecfe79"
RATES = {"python-api-pkl": 150, "python-api-onnx": 500}  # half a quota or less, both hold


def services_at(commit: str, folder: Path) -> Path:
    """services/ as it was at `commit`, unpacked into `folder` (needs the git history)."""
    archive = subprocess.run(
        ["git", "-C", str(paths.REPO_ROOT), "archive", commit, "services"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise RuntimeError(f"cannot read commit {commit} (a shallow clone?): {archive.stderr!r}")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder / "services"


def section(args: argparse.Namespace) -> None:
    size = sizing.for_profile("quick").capacity.windows
    run_dir = paths.RESULTS_DIR / f"bench-read-limits-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    with tempfile.TemporaryDirectory(prefix="services-before-") as scratch:
        before = services_at(BEFORE, Path(scratch))
        instances = []
        for service in RATES:
            old_path = f"{before / service}:{before / 'python-common'}"
            instances += [
                variant(service),
                variant(
                    service,
                    "before",
                    environment={"PYTHONSAFEPATH": "1", "PYTHONPATH": old_path},
                ),
            ]
        with start_stack(
            "local", run_dir=run_dir, artifacts_dir=Path(args.artifacts_dir), instances=instances
        ) as stack:
            target_of = capacity.targets(stack, feature_ranges(run_dir), run_dir / "targets")
            comparisons = [
                interleave.Comparison(
                    service,
                    [
                        interleave.Arm(f"{service}.before", f"before ({BEFORE})"),
                        interleave.Arm(service, "with the read limits"),
                    ],
                    rate,
                )
                for service, rate in RATES.items()
            ]
            interleave.run(
                stack, comparisons, lambda c, arm: target_of(arm.target), size.window_s,
                size.min_rounds, 2 * size.max_rounds, 0.03, 240,
                windows.WindowLog(run_dir / "windows.jsonl"), lambda text: print(f"    {text}"),
            )  # fmt: skip
    for comparison in comparisons:
        before_arm, after_arm = (a.label for a in comparison.arms)
        print(
            f"  {comparison.name} at {comparison.rate} req/s: "
            f"{comparison.cpu_us_per_request(before_arm).text(suffix=' µs')} before, "
            f"{comparison.cpu_us_per_request(after_arm).text(suffix=' µs')} after: "
            f"{comparison.sentence(after_arm, 0.03)}"
        )
