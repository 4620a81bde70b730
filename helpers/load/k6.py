"""Run k6 once, bounded, with progress, and say what it cost: shared by the load test and capacity.

k6 is started through `stack.start_load_generator`, so the backend decides where it runs (a
process, a container); everything the scripts need arrives as environment variables. Its REST
API (127.0.0.1 only) gives the live request count for the progress line; its CPU comes from the
generator itself (`LoadGenerator.cpu_seconds()`), so every figure can say whether k6 had room.

Progress is shown twice, for two readers: one line in the notebook, updated in place (an
executed notebook's HTML keeps only its final state), and a line on the kernel's own stderr
every tenth of the run, which is the terminal of `make study`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from helpers import net
from helpers.serving.protocol import Stack

# k6 needs a moment to start and to stop (gracefulStop = the request timeout); beyond that
# margin a run is declared hung and stopped.
START_STOP_MARGIN_S = 60.0
TREND_STATS = "avg,min,med,max,p(50),p(90),p(95),p(99)"


@dataclass(frozen=True)
class K6Run:
    """One finished (or interrupted) k6 run: when it ran, how it ended, what it cost."""

    started_at: float  # unix seconds: the first moment k6's API answered
    ended_at: float
    exit_code: int
    cpu_seconds: float | None  # user+system CPU of k6 itself
    summary_path: Path
    log_path: Path
    interrupted: bool = False

    def summary(self) -> dict[str, Any]:
        return json.loads(self.summary_path.read_text())


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a k6 run; `.run` is what k6 did until then (its summary, if it wrote one)."""

    def __init__(self, run: K6Run) -> None:
        super().__init__(f"k6 interrupted after {run.ended_at - run.started_at:.0f} s")
        self.run = run


def environment(
    stack: Stack,
    run_id: str,
    targets: dict[str, str],
    ranges: dict[str, Any],
    push_interval_s: float | None = None,
    **extra: str,
) -> dict[str, str]:
    """What the scripts read (TARGETS, FEATURE_RANGES, RUN_ID, …) plus, when `push_interval_s`
    is given, the remote-write output's settings (k6 series land in the run's Prometheus)."""
    env = {
        "RUN_ID": run_id,
        "TARGETS": json.dumps(targets),
        "FEATURE_RANGES": json.dumps(ranges),
        "K6_NO_USAGE_REPORT": "true",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        **extra,
    }
    if push_interval_s is not None:
        env |= {
            "K6_PROMETHEUS_RW_SERVER_URL": stack.remote_write_url,
            "K6_PROMETHEUS_RW_TREND_STATS": "p(50),p(95),p(99)",
            "K6_PROMETHEUS_RW_PUSH_INTERVAL": f"{push_interval_s:g}s",
        }
    return env


def arguments(script: Path, summary_path: Path, api_port: int, remote_write: bool) -> list[str]:
    args = ["run", "--no-usage-report", "--address", f"127.0.0.1:{api_port}"]
    args += ["--summary-export", str(summary_path), "--summary-trend-stats", TREND_STATS]
    if remote_write:
        args += ["--out", "experimental-prometheus-rw"]
    else:
        args += ["--quiet"]
    return [*args, str(script)]


def live_request_count(api_url: str) -> int | None:
    """Requests k6 has completed so far, from its REST API (None while it is not answering)."""
    try:
        response = httpx.get(f"{api_url}/v1/metrics/http_reqs", timeout=1.0)
        if response.status_code != 200:
            return None
        return int(response.json()["data"]["attributes"]["sample"]["count"])
    except (httpx.HTTPError, KeyError, ValueError, TypeError):
        return None


class Progress:
    """One line in the notebook (updated in place) and a line per tenth on the terminal."""

    def __init__(self, description: str, planned_s: float, planned_requests: int | None) -> None:
        self.description = description
        self.planned_s = planned_s
        self.planned_requests = planned_requests
        self.next_tenth = 1
        self.handle: Any = None
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                self.handle = display(self._text(0, None), display_id=True)
        except ImportError:
            self.handle = None

    def _text(self, elapsed_s: float, count: int | None, final: str = "") -> str:
        planned = f" of {self.planned_requests} planned" if self.planned_requests else ""
        sent = f", {count} requests{planned}" if count is not None else ""
        return (
            f"{self.description}: {min(elapsed_s, self.planned_s):.0f} s of "
            f"{self.planned_s:.0f} s{sent}{final}"
        )

    def update(self, elapsed_s: float, count: int | None) -> None:
        if self.handle is not None:
            self.handle.update(self._text(elapsed_s, count))
        if elapsed_s >= self.next_tenth * self.planned_s / 10:
            self.next_tenth = int(elapsed_s * 10 / max(self.planned_s, 1e-9)) + 1
            print(self._text(elapsed_s, count), file=sys.__stderr__, flush=True)

    def finish(self, elapsed_s: float, count: int | None, how: str) -> None:
        text = self._text(elapsed_s, count, f" — {how}")
        if self.handle is not None:
            self.handle.update(text)
        else:
            print(text, flush=True)
        print(text, file=sys.__stderr__, flush=True)


def _started(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/v1/status", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def run(
    stack: Stack,
    script: Path,
    env: dict[str, str],
    out_dir: Path,
    planned_s: float,
    description: str,
    planned_requests: int | None = None,
    remote_write: bool = False,
    progress: bool = True,
) -> K6Run:
    """Run `script` once; returns when k6 ended by itself. Raises RuntimeError if k6 failed,
    TimeoutError (after stopping it) if it runs past planned_s + START_STOP_MARGIN_S.

    Ctrl-C (KeyboardInterrupt) stops k6 gracefully — it still writes its summary — and is
    re-raised as `Interrupted`, which carries the partial run for the caller to record.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path, log_path = out_dir / "summary.json", out_dir / "k6.log"
    summary_path.unlink(missing_ok=True)
    api_port = net.free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    generator = stack.start_load_generator(
        arguments(script, summary_path, api_port, remote_write), env, log_path
    )
    shown = Progress(description, planned_s, planned_requests) if progress else None
    launched = time.time()
    started_at: float | None = None
    cpu_s: float | None = None
    count: int | None = None
    deadline = time.monotonic() + planned_s + START_STOP_MARGIN_S
    interrupted = False
    try:
        while generator.alive():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"k6 ({description}) still running {planned_s + START_STOP_MARGIN_S:.0f} s "
                    f"after start; stopped it. Log tail:\n{generator.log_tail()}"
                )
            if started_at is None and _started(api_url):
                started_at = time.time()
            count = live_request_count(api_url) or count
            cpu_s = generator.cpu_seconds() or cpu_s
            if shown is not None and started_at is not None:
                shown.update(time.time() - started_at, count)
            time.sleep(1.0)  # pacing the progress display and the CPU samples
    except KeyboardInterrupt:
        interrupted = True
        cpu_s = generator.cpu_seconds() or cpu_s
        exit_code = generator.stop()
        partial = K6Run(
            started_at or launched, time.time(), exit_code, cpu_s, summary_path, log_path, True
        )
        raise Interrupted(partial) from None
    finally:
        if not interrupted:
            exit_code = generator.stop()
        if shown is not None:
            how = "interrupted" if interrupted else f"k6 {_describe_exit(exit_code)}"
            shown.finish(time.time() - (started_at or launched), count, how)
    if exit_code != 0 or not summary_path.exists():
        raise RuntimeError(
            f"k6 {description} exited with status {exit_code}"
            f"{'' if summary_path.exists() else ' and wrote no summary'}; "
            f"log {log_path}:\n{generator.log_tail(30)}"
        )
    return K6Run(started_at or launched, time.time(), exit_code, cpu_s, summary_path, log_path)


def _describe_exit(code: int) -> str:
    return "done" if code == 0 else f"exited with status {code}"
