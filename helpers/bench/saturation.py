"""CPU per request of one server process at saturation: two builds measured side by side.

`make bench` uses it to compare the Go service before and after a change (e.g. the JSON
library of issue 9) in one run: each build is started as a plain process on 127.0.0.1
(no cgroup, GOMAXPROCS=1 — one core's worth, as the facts of this project were measured),
driven closed-loop by vegeta (`-rate=0`: as fast as `workers` requests in flight allow), and
charged the user+system CPU its process used (psutil) per request answered. The builds
alternate, so a drift of the shared machine hits both; the medians and the paired differences
are reported, never a single run.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from helpers import net
from helpers.load import vegeta, windows
from helpers.serving import process


@dataclass(frozen=True)
class Run:
    build: str
    requests: int
    cpu_us_per_request: float
    rate: float  # requests per second answered


def once(
    build: str, argv: Sequence[str], env: dict[str, str], duration_s: float, workers: int = 8
) -> Run:
    """Start `argv` (a server honouring PORT and MODEL_MANIFEST), saturate POST /predict with
    bodies drawn within the manifest's training ranges, stop it."""
    port = net.free_port()
    ranges = json.loads(Path(env["MODEL_MANIFEST"]).read_text())["feature_ranges"]
    with tempfile.TemporaryDirectory(prefix="saturation-") as scratch:
        work = Path(scratch)
        server = process.start(build, argv, work / "server.log", env={**env, "PORT": str(port)})
        try:
            net.wait_until_ready(f"http://127.0.0.1:{port}/healthz", 30, process=server.popen)
            url = f"http://127.0.0.1:{port}"
            targets = windows.targets_file(url, ranges, work / "targets.json")
            vegeta.attack(targets, 0, 1.0, work / "warm-up", max_workers=workers, workers=workers)
            before = _cpu(server.pid)
            sent = vegeta.attack(targets, 0, duration_s, work, max_workers=workers, workers=workers)
            used = _cpu(server.pid) - before
        finally:
            server.stop()
    return Run(build, sent.requests, used * 1e6 / max(sent.requests, 1), sent.rate)


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def compare(
    builds: dict[str, tuple[Sequence[str], dict[str, str]]], repeats: int, duration_s: float
) -> list[Run]:
    """Every build `repeats` times, alternating (the order flips each round)."""
    names = list(builds)
    runs = []
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            argv, env = builds[name]
            runs.append(once(name, argv, env, duration_s))
    return runs


def report(runs: list[Run], before: str, after: str) -> str:
    """Medians per build and the median paired difference (after − before)."""
    by = {name: [r.cpu_us_per_request for r in runs if r.build == name] for name in (before, after)}
    pairs = [b - a for a, b in zip(by[before], by[after], strict=False)]
    faster = sum(1 for d in pairs if d < 0)
    return (
        f"  {before:<10} median {statistics.median(by[before]):7.1f} µs/request\n"
        f"  {after:<10} median {statistics.median(by[after]):7.1f} µs/request\n"
        f"  paired difference (after − before): median {statistics.median(pairs):+.1f} µs; "
        f"after was cheaper in {faster} of {len(pairs)} rounds"
    )
