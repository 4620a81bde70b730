"""One measurement window: a constant rate against one instance for a second or two, and
exactly what it cost both sides.

Every figure of notebooks 06–08 is built from windows. A window sends `rate` requests per
second (or batches of `batch` rows) to one instance of a stack with vegeta, reads the
instance's CPU, CFS periods and working set from its cgroup right before and right after
(`Stack.usage`: the counters themselves, not a scrape a second apart), and takes vegeta's
own CPU from the kernel's accounting of the finished process (`os.wait4`). Short windows are
what makes the study's intervals possible: a step is several windows (helpers.load.stepping),
a comparison alternates windows of its arms (helpers.load.interleave), and both bootstrap
over them (helpers.intervals).

Windows are appended to a JSON-lines log in the run folder as they finish, so a run that is
interrupted keeps every window it measured, and the analysis re-reads them later.
"""

from __future__ import annotations

import base64
import json
import math
import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from helpers import paths

VEGETA = paths.BUILD_DIR / "vegeta"
DISTINCT_BODIES = 500  # random bodies cycled: every request is a plausible iris
TIMEOUT_S = 2.0  # a request unanswered after this is an error (the objective is 25 ms)
MAX_WORKERS = 512  # vegeta's pool: enough in flight to keep an open-loop rate on time
EXIT_MARGIN_S = 20.0  # vegeta must finish within the window + timeout + this


@dataclass(frozen=True)
class Window:
    """What one window sent and what it cost: the unit every interval resamples."""

    target: str  # the stack's instance
    label: str  # the arm or step it belongs to, in words
    rate: int  # requests per second offered
    batch: int  # rows per request (1: /predict)
    round: int  # which round of its comparison (or which window of its step)
    started_at: float  # unix seconds
    ended_at: float  # the last answer, not the last send
    planned_s: float
    requests: int  # sent
    ok: int  # answered 2xx
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    cpu_s: float  # the instance's cgroup, over [started_at, ended_at]
    periods: int  # CFS periods with runnable tasks
    throttled: int  # … of which throttled
    working_set_bytes: float  # at the end of the window
    oom_kills: int  # counted in the cgroup by the end of the window
    generator_cpu_s: float  # vegeta's user + system time
    cpu_counter_at_start: float = math.nan  # the cgroup's CPU seconds counter, absolute
    cpu_with_tail_s: float = math.nan  # CPU from the start to `tail_s` after the end
    tail_s: float = math.nan  # how long after the end that was read (see interleave)
    status_codes: str = ""  # vegeta's count per status, e.g. "200:1500"

    @property
    def elapsed_s(self) -> float:
        return max(self.ended_at - self.started_at, 1e-9)

    @property
    def error_rate(self) -> float:
        return 1.0 - self.ok / self.requests if self.requests else 1.0

    @property
    def behind(self) -> float:
        """Share of the planned requests not answered in time (the open loop fell behind)."""
        planned = self.rate * self.planned_s
        return max(0.0, 1.0 - self.ok / planned) if planned else math.nan

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s * 1e6 / self.ok if self.ok else math.nan

    @property
    def service_cores(self) -> float:
        return self.cpu_s / self.elapsed_s

    @property
    def generator_cores(self) -> float:
        return self.generator_cpu_s / self.elapsed_s

    @property
    def throttled_ratio(self) -> float:
        return self.throttled / self.periods if self.periods else 0.0

    def row(self) -> dict[str, Any]:
        """The window and its derived figures, for a DataFrame."""
        derived = ("error_rate", "behind", "cpu_us_per_request", "service_cores")
        return asdict(self) | {
            name: getattr(self, name)
            for name in (*derived, "generator_cores", "throttled_ratio", "elapsed_s")
        }


# -- targets -------------------------------------------------------------------------------


def targets_file(
    url: str, ranges: dict[str, Any], path: Path, batch: int = 1, seed: int = 0
) -> Path:
    """POST targets in vegeta's JSON format: bodies drawn within the training ranges (as k6
    draws them), seeded so every instance gets the same requests. `batch` > 1 posts
    `{"instances": [...]}` of that many rows to /predict/batch."""
    if batch < 1:
        raise ValueError(f"batch must be ≥ 1 rows, got {batch}")
    rng = random.Random(seed)

    def row() -> dict[str, float]:
        return {name: round(rng.uniform(r["min"], r["max"]), 2) for name, r in ranges.items()}

    endpoint = f"{url}/predict" if batch == 1 else f"{url}/predict/batch"
    lines = []
    for _ in range(DISTINCT_BODIES if batch < 64 else 20):
        body = row() if batch == 1 else {"instances": [row() for _ in range(batch)]}
        encoded = base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()
        lines.append(
            json.dumps(
                {
                    "method": "POST",
                    "url": endpoint,
                    "header": {"Content-Type": ["application/json"]},
                    "body": encoded,
                }
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


# -- one window ----------------------------------------------------------------------------


def _vegeta() -> Path:
    if not VEGETA.exists():
        raise FileNotFoundError(f"vegeta not found at {VEGETA}; run `make setup`")
    return VEGETA


def _attack(
    targets: Path, rate: int, duration_s: float, results: Path, log: Path, connections: int | None
) -> float:
    """Run vegeta's attack to its end; returns its CPU seconds (user + system, from wait4).
    `connections` fixes the requests in flight (else the pool grows as the rate needs)."""
    workers, most = (connections, connections) if connections else (10, MAX_WORKERS)
    argv = [str(_vegeta()), "attack", "-format=json", f"-targets={targets}"]
    argv += [f"-rate={rate}/s", f"-duration={duration_s:g}s", f"-timeout={TIMEOUT_S:g}s"]
    argv += [f"-workers={workers}", f"-max-workers={most}", "-max-body=0", f"-output={results}"]
    with log.open("ab") as sink:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)
    deadline = time.monotonic() + duration_s + TIMEOUT_S + EXIT_MARGIN_S
    try:
        while True:  # reaped here, so the kernel's rusage of exactly this process is ours
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                child.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"vegeta still running {duration_s:g} s into a window")
            time.sleep(0.01)  # waiting for an exit: there is no readiness to observe
    except BaseException:
        child.send_signal(signal.SIGKILL)
        child.wait()
        raise
    if child.returncode != 0:
        tail = log.read_text(errors="replace")[-800:]
        raise RuntimeError(f"vegeta exited with status {child.returncode}: {tail}")
    return usage.ru_utime + usage.ru_stime


def _report(results: Path) -> dict[str, Any]:
    report = subprocess.run(
        [str(_vegeta()), "report", "-type=json", str(results)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(report.stdout)


def measure(
    stack: Any,
    target: str,
    rate: int,
    window_s: float,
    targets: Path,
    label: str = "",
    round_: int = 0,
    batch: int = 1,
    connections: int | None = None,
) -> Window:
    """One window against `target` of a running stack (bounded: the window, the request
    timeout and a margin). Raises RuntimeError if the instance has exited."""
    if rate < 1 or window_s <= 0:
        raise ValueError(f"rate must be ≥ 1 req/s and the window positive: {rate}, {window_s}")
    scratch = Path(targets).parent
    results, log = scratch / f"{target}.bin", scratch / "vegeta.log"
    before = stack.usage(target)
    started = time.time()
    generator_s = _attack(Path(targets), rate, window_s, results, log, connections)
    ended = time.time()
    after = stack.usage(target)
    report = _report(results)
    results.unlink(missing_ok=True)
    latencies = report.get("latencies") or {}
    codes = report.get("status_codes") or {}
    ok = sum(int(n) for code, n in codes.items() if str(code).startswith("2"))
    return Window(
        target=target,
        label=label,
        rate=rate,
        batch=batch,
        round=round_,
        started_at=started,
        ended_at=ended,
        planned_s=window_s,
        requests=int(report.get("requests", 0)),
        ok=ok,
        p50_ms=latencies.get("50th", 0) / 1e6,
        p95_ms=latencies.get("95th", 0) / 1e6,
        p99_ms=latencies.get("99th", 0) / 1e6,
        max_ms=latencies.get("max", 0) / 1e6,
        cpu_s=after.cpu_usage_seconds - before.cpu_usage_seconds,
        periods=after.cfs_periods - before.cfs_periods,
        throttled=after.cfs_throttled_periods - before.cfs_throttled_periods,
        working_set_bytes=float(after.memory_working_set_bytes),
        oom_kills=after.oom_kills,
        generator_cpu_s=generator_s,
        cpu_counter_at_start=before.cpu_usage_seconds,
        status_codes=",".join(f"{code}:{n}" for code, n in sorted(codes.items())),
    )


# -- the log ---------------------------------------------------------------------------------


class WindowLog:
    """Windows appended to `path` (JSON lines) as they are measured, and read back."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # tails are logged from timer threads

    def append(self, window: Window, **context: Any) -> None:
        self._write(asdict(window) | context)

    def _write(self, row: dict[str, Any]) -> None:
        with self._lock, self.path.open("a") as sink:
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            os.fsync(sink.fileno())

    def read(self) -> list[dict[str, Any]]:
        return read(self.path)


_WINDOW_FIELDS = {f.name for f in fields(Window)}


def read(path: Path) -> list[dict[str, Any]]:
    """Every window of a log with its context (a truncated last line — the run was killed
    mid-write — is left out, never a crash)."""
    if not Path(path).exists():
        return []
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def window_of(row: dict[str, Any]) -> Window:
    """A logged row back into a Window (its context dropped)."""
    return Window(**{k: v for k, v in row.items() if k in _WINDOW_FIELDS})
