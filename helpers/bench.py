"""`make bench`: side-by-side benchmarks printed to the terminal, one section per question.

Each section is measured in one run so its numbers compare like with like. Adding a section
is one line in SECTIONS; each gets `--only NAME` for free:

    python -m helpers.bench                 # every section
    python -m helpers.bench --only model    # one (repeat --only for several)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from helpers import paths
from helpers.load import capacity, saturation, sweeps
from helpers.model import artifacts, microbench
from helpers.serving import footprint


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


# The Go service before issue 9 moved its JSON to go-json-experiment/json (the hand-written
# parser and printer were the last code of this commit's Go module).
GO_JSON_BASELINE = "fc4906a002dd6f4de8c92baa24bcbf685e505509"


def build_go_at(commit: str) -> Path:
    """The Go service as it was at `commit`, built once into .build/ (needs the git history)."""
    binary = paths.BUILD_DIR / f"go-api-onnx-{commit[:7]}"
    if binary.exists():
        return binary
    source = paths.BUILD_DIR / f"go-api-onnx-src-{commit[:7]}"
    source.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(paths.REPO_ROOT), "archive", commit, "go-api-onnx"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise RuntimeError(f"cannot read commit {commit} (a shallow clone?): {archive.stderr!r}")
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    subprocess.run(
        ["go", "build", "-trimpath", "-o", str(binary), "./cmd/api"],
        cwd=source / "go-api-onnx",
        env={**os.environ, "CGO_ENABLED": "1"},
        check=True,
    )
    return binary


def go_json_section(args: argparse.Namespace) -> None:
    baseline = build_go_at(GO_JSON_BASELINE)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOST": "127.0.0.1",
        "ORT_SHARED_LIB_PATH": str(paths.ort_shared_library()),
        "MODEL_PATH": str(Path(args.artifacts_dir) / "model.onnx"),
        "MODEL_MANIFEST": str(Path(args.artifacts_dir) / "manifest.json"),
        "OTEL_METRICS_EXPORTER": "none",
        "GOMAXPROCS": "1",
    }
    builds = {"before": ([str(baseline)], env), "after": ([str(paths.GO_SERVICE_BINARY)], env)}
    runs = saturation.compare(builds, repeats=args.repeats, duration_s=8.0)
    print(f"  before = {GO_JSON_BASELINE[:7]} (hand-written JSON), after = this checkout")
    print(saturation.report(runs, "before", "after"))


def telemetry_section(args: argparse.Namespace) -> None:
    from datetime import UTC, datetime

    run_dir = paths.RESULTS_DIR / f"bench-telemetry-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    rates = {"python-api-pkl": 150, "python-api-onnx": 300, "go-api-onnx": 300}
    frame = sweeps.telemetry_paths("local", run_dir, Path(args.artifacts_dir), rates, 8.0, 2)
    table = frame.groupby(["service", "path"], sort=False).median(numeric_only=True)
    columns = ["rate", "cpu_us_per_request", "collector_cpu_us_per_request", "p95_ms"]
    print(table[columns].round(1).to_string())
    memory = frame["collector_working_set_bytes"].max() / 2**20
    print(f"  the collector's working set at most {memory:.1f} MiB; steps in {run_dir}")


SECTIONS: list[Section] = [
    Section("model", "single-row latency: sklearn predict_proba vs onnxruntime run", model_section),
    Section(
        "capacity",
        "highest constant rate holding p95 ≤ 25 ms, errors < 0.1 %, drops < 1 %",
        capacity.bench_section,
    ),
    Section("services", "idle memory, CPU per 1000 requests (limited)", footprint.section),
    Section(
        "go-json",
        "the Go service's CPU per request at saturation, before/after its JSON library",
        go_json_section,
    ),
    Section(
        "telemetry",
        "CPU per request with telemetry off / pulled / pushed through the collector",
        telemetry_section,
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


if __name__ == "__main__":
    sys.exit(main())
