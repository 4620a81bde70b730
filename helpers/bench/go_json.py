"""`make bench`, go-json section: the Go service's CPU per request at saturation, before and
after its JSON library changed (issue 9), measured side by side (helpers.bench.saturation).
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from helpers import paths
from helpers.bench import saturation

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


def section(args: argparse.Namespace) -> None:
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
