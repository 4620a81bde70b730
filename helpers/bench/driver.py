"""`make bench`: side-by-side benchmarks printed to the terminal, one section per question.

Each section is measured in one run so its numbers compare like with like. Adding a section
is one line in SECTIONS; each gets `--only NAME` for free:

    python -m helpers.bench                 # every section
    python -m helpers.bench --only model    # one (repeat --only for several)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from helpers import paths
from helpers.bench import capacity, footprint, go_json, read_limits, telemetry_paths
from helpers.model import artifacts, microbench


@dataclass(frozen=True)
class Section:
    name: str  # the value of --only
    title: str
    run: Callable[[argparse.Namespace], None]


def model_section(args: argparse.Namespace) -> None:
    result = microbench.measure(args.artifacts_dir, iterations=args.iterations)
    for runtime, row in result.summary().iterrows():
        print(f"  {runtime:<22} median {row.median_us:8.1f} µs   p99 {row.p99_us:8.1f} µs")
    print(f"  ratio of medians (sklearn / onnxruntime): {result.median_ratio:.1f}×")


SECTIONS: list[Section] = [
    Section("model", "single-row latency: sklearn predict_proba vs onnxruntime run", model_section),
    Section(
        "capacity",
        "notebook 06 at the quick profile: capacities, floors, the headline ratios",
        capacity.section,
    ),
    Section(
        "reproducibility",
        "notebook 06's headline ratios measured twice, and how far they moved between runs",
        capacity.reproducibility,
    ),
    Section("services", "idle memory, CPU per 1000 requests (limited)", footprint.section),
    Section(
        "go-json",
        "the Go service's CPU per request at saturation, before/after its JSON library",
        go_json.section,
    ),
    Section(
        "read-limits",
        "the Python services' CPU per request before and after their read limits (issue 20)",
        read_limits.section,
    ),
    Section(
        "telemetry",
        "CPU per request with telemetry off / pulled / pushed through the collector",
        telemetry_paths.section,
    ),
]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        choices=[section.name for section in SECTIONS],
        help="run only this section (repeatable)",
    )
    parser.add_argument("--artifacts-dir", type=Path, default=paths.ARTIFACTS_DIR)
    parser.add_argument(
        "--iterations", type=int, default=5000, help="single-row calls per runtime (model)"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="alternating rounds per build (go-json)"
    )
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.repeats < 1:
        parser.error(
            f"--iterations and --repeats must be at least 1, got {args.iterations}, {args.repeats}"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    artifacts.ensure(args.artifacts_dir)  # every section needs the model
    for section in SECTIONS:
        if args.only is None or section.name in args.only:
            print(f"== {section.name}: {section.title}", flush=True)
            section.run(args)
    return 0
