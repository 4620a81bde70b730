"""Vegeta as a closed loop, for saturation: as many requests as a fixed pool keeps in flight
(`make bench`'s two-builds comparison). The study's constant-rate windows are helpers.load.
windows, which writes the targets this reads.

Vegeta: the efficient open-loop generator for steps at a constant rate.

k6 spends about a third of a millisecond of CPU per request here — more than the Go service
itself — so at the Go service's capacity k6 would need more than a core of this 2-core
machine, and every high-rate figure it produced would be the generator's. Vegeta
(github.com/tsenart/vegeta, built from the Go module proxy by `make setup`) sends at a
constant rate from a pool of workers over kept-alive connections, measures every request, and
costs a fraction of that; its CPU is sampled during every attack, so a figure without
headroom can still be called what it is.

Vegeta runs as a process on this host in both backends: the services' ports are published on
127.0.0.1 either way, and nothing else is ever targeted.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import paths
from helpers.serving import process

BINARY = paths.BUILD_DIR / "vegeta"
TARGETS = 500  # distinct random bodies, cycled: every request is a plausible iris
START_STOP_MARGIN_S = 30.0


@dataclass(frozen=True)
class Attack:
    """What one attack did (from `vegeta report -type=json`) and what it cost the generator."""

    requests: int
    rate: float  # achieved requests per second sent
    success: float  # share of 2xx answers
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    duration_s: float
    cpu_seconds: float | None  # vegeta's own user+system CPU over the attack
    status_codes: dict[str, int]
    errors: list[str]


def binary() -> Path:
    if not BINARY.exists():
        raise FileNotFoundError(f"vegeta not found at {BINARY}; run `make setup`")
    return BINARY


def attack(
    targets: Path,
    rate: int,
    duration_s: float,
    out_dir: Path,
    timeout_s: float = 2.0,
    max_workers: int = 512,
    workers: int = 10,
) -> Attack:
    """Send `rate` requests per second for `duration_s` (rate 0: as fast as `max_workers`
    requests in flight allow — closed loop, for saturation); bounded by the duration, the
    request timeout and the worker pool. Raises RuntimeError if vegeta fails."""
    if rate < 0 or duration_s <= 0:
        raise ValueError(f"rate must be ≥ 0 and duration positive, got {rate}, {duration_s}")
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.bin"
    argv = [str(binary()), "attack", "-format=json", f"-targets={targets}"]
    argv += [f"-rate={rate}/s", f"-duration={duration_s:g}s", f"-timeout={timeout_s:g}s"]
    argv += [f"-workers={workers}", f"-max-workers={max(workers, max_workers)}"]
    argv += ["-max-body=0", f"-output={results}"]
    generator = process.start("vegeta", argv, out_dir / "vegeta.log")
    cpu_s: float | None = None
    deadline = time.monotonic() + duration_s + timeout_s + START_STOP_MARGIN_S
    try:
        while generator.alive():
            if time.monotonic() > deadline:
                raise TimeoutError(f"vegeta still running after {duration_s:g} s: stopped it")
            cpu_s = generator.cpu_seconds() or cpu_s
            time.sleep(0.2)  # pacing the CPU samples
    finally:
        status = generator.stop()
    if status != 0:
        raise RuntimeError(f"vegeta exited with status {status}: {generator.log_tail()}")
    report = subprocess.run(
        [str(binary()), "report", "-type=json", str(results)],
        capture_output=True,
        text=True,
        check=True,
    )
    (out_dir / "report.json").write_text(report.stdout)
    results.unlink()  # the report keeps what the study reads; the raw results are large
    return parse_report(json.loads(report.stdout), cpu_s)


def parse_report(report: dict[str, Any], cpu_seconds: float | None) -> Attack:
    latencies = report.get("latencies", {})

    def ms(key: str) -> float:
        return latencies.get(key, 0) / 1e6

    return Attack(
        requests=int(report.get("requests", 0)),
        rate=float(report.get("rate", 0.0)),
        success=float(report.get("success", 0.0)),
        p50_ms=ms("50th"),
        p95_ms=ms("95th"),
        p99_ms=ms("99th"),
        max_ms=ms("max"),
        duration_s=report.get("duration", 0) / 1e9,
        cpu_seconds=cpu_seconds,
        status_codes={str(k): int(v) for k, v in (report.get("status_codes") or {}).items()},
        errors=list(report.get("errors") or [])[:10],
    )
