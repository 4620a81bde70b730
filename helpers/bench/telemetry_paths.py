"""`make bench`, telemetry section: what telemetry costs each service, per path.

One stack, three instances of every service — telemetry off, pulled by Prometheus (the
contract's local default), pushed as OTLP through the OpenTelemetry Collector (the post's
path) — loaded in alternating windows at the same rate (helpers.load.interleave), so each
path's cost is a paired difference against "off" with its interval; and what the collector
itself spends per request it carried (its own cgroup, unlimited).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from helpers import paths, sizing
from helpers.load import capacity, interleave, windows
from helpers.serving import collector
from helpers.serving.instances import variant
from helpers.serving.protocol import feature_ranges
from helpers.serving.stack import start_stack

SERVICES = ("python-api-pkl", "python-api-onnx", "go-api-onnx")
RATES = {"python-api-pkl": 150, "python-api-onnx": 500, "go-api-onnx": 1500}  # light, all hold
PATHS = {
    "off": ({"OTEL_METRICS_EXPORTER": "none"}, "pull", "off"),
    "pulled by Prometheus": ({}, "pull", "pulled"),
    "pushed to the collector": ({}, "collector", "pushed"),
}


def section(args: argparse.Namespace) -> None:
    size = sizing.for_profile("quick").capacity.windows
    run_dir = paths.RESULTS_DIR / f"bench-telemetry-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    instances = [
        variant(service, tag, environment=env, telemetry=path)
        for service in SERVICES
        for env, path, tag in PATHS.values()
    ]
    with start_stack(
        "local", run_dir=run_dir, artifacts_dir=Path(args.artifacts_dir), instances=instances
    ) as stack:
        target_of = capacity.targets(stack, feature_ranges(run_dir), run_dir / "targets")
        comparisons = [
            interleave.Comparison(
                service,
                [interleave.Arm(f"{service}.{tag}", label) for label, (_, _, tag) in PATHS.items()],
                RATES[service],
            )
            for service in SERVICES
        ]
        before = stack.usage(collector.NAME).cpu_usage_seconds
        interleave.run_sized(
            stack, comparisons, target_of, size, 300,
            windows.WindowLog(run_dir / "windows.jsonl"), lambda text: print(f"    {text}"),
        )  # fmt: skip
        collector_s = stack.usage(collector.NAME).cpu_usage_seconds - before
    pushed = sum(r["pushed to the collector"].ok for c in comparisons for r in c.complete_rounds())
    for comparison in comparisons:
        print(f"  {comparison.name} at {comparison.rate} req/s:")
        for arm in comparison.arms:
            cpu = comparison.cpu_us_per_request(arm.label).text(suffix=" µs")
            against = "" if arm is comparison.arms[0] else comparison.sentence(arm.label, 0.05)
            print(f"    {arm.label:<26} {cpu:<40} {against}")
    if pushed:
        print(f"  the collector spent {collector_s * 1e6 / pushed:.0f} µs per request it carried")
