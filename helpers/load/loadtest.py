"""Run the seed's load test (k6/seed.js) against a stack and keep what it says in the run folder.

The load shapes live in `k6/profiles.json`, read both here and by k6, so the planned duration
and the planned number of requests (what "k6 reached ≥ 95 % of its plan" is measured against)
cannot drift from what k6 actually runs. Each mode is one k6 run ("phase"); its files go to
`run_dir/k6/<mode>/` (k6.log, summary.json) and `run_dir/k6/load_test.json` indexes the phases
with their time windows, which is all the analysis needs to find them in Prometheus later.

k6 is started through `stack.start_load_generator`, so the backend decides where it runs; its
REST API (127.0.0.1 only) feeds a progress bar with the live request count.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import pandas as pd

from helpers import net, paths
from helpers.model import manifest as manifest_io
from helpers.serving.process import ManagedProcess

PROFILES_FILE = paths.K6_DIR / "profiles.json"
SEED_SCRIPT = paths.K6_DIR / "seed.js"
MODES = ("coupled", "isolated")
MODE_CHOICES = (*MODES, "both")
TREND_STATS = "p(50),p(95),p(99)"
INDEX_NAME = "load_test.json"
# k6 needs a moment to start and to stop (gracefulStop = the request timeout); beyond that
# margin a run is declared hung and stopped.
START_STOP_MARGIN_S = 60.0


class LoadGeneratorStack(Protocol):
    """What this module needs from `helpers.serving.stack.Stack` (either backend)."""

    run_dir: Path
    load_target_urls: dict[str, str]
    prometheus_url: str
    remote_write_url: str

    def start_load_generator(
        self, args: list[str], env: dict[str, str], log_path: Path
    ) -> ManagedProcess: ...


@dataclass(frozen=True)
class Stage:
    duration_s: float
    target: float  # iterations per time unit at the stage's end


@dataclass(frozen=True)
class Profile:
    """One load shape of k6/profiles.json, with the arithmetic the plan needs."""

    name: str
    time_unit_s: float
    start_rate: float
    stages: tuple[Stage, ...]
    gap_s: float
    request_timeout_s: float
    push_interval_s: float
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def phase_s(self) -> float:
        """Length of one ramp (one service in isolated mode, all of them in coupled mode)."""
        return sum(stage.duration_s for stage in self.stages)

    def planned_iterations(self) -> float:
        """Iterations the ramp starts if k6 keeps up: the area under the rate curve."""
        total, rate = 0.0, self.start_rate
        for stage in self.stages:
            total += (rate + stage.target) / 2 * stage.duration_s / self.time_unit_s
            rate = stage.target
        return total

    def peak_rate_per_minute(self) -> float:
        return max(self.start_rate, *(s.target for s in self.stages)) * 60 / self.time_unit_s

    def rate_at(self, elapsed_s: float) -> float:
        """Planned iterations per minute `elapsed_s` into the ramp (0 outside it)."""
        if elapsed_s < 0 or elapsed_s > self.phase_s:
            return 0.0
        start, rate = 0.0, self.start_rate
        for stage in self.stages:
            if elapsed_s <= start + stage.duration_s:
                fraction = (elapsed_s - start) / stage.duration_s if stage.duration_s else 1.0
                return (rate + (stage.target - rate) * fraction) * 60 / self.time_unit_s
            start, rate = start + stage.duration_s, stage.target
        return rate * 60 / self.time_unit_s

    def duration_s(self, mode: str, n_services: int) -> float:
        """Planned wall time of one k6 run in `mode` (without start-up and graceful stop)."""
        check_mode(mode, allow_both=False)
        if mode == "coupled":
            return self.phase_s
        return n_services * self.phase_s + (n_services - 1) * self.gap_s

    def service_windows(self, mode: str, services: list[str]) -> dict[str, tuple[float, float]]:
        """Seconds after the k6 run's start during which each service is under load."""
        check_mode(mode, allow_both=False)
        if mode == "coupled":
            return {service: (0.0, self.phase_s) for service in services}
        step = self.phase_s + self.gap_s
        return {s: (i * step, i * step + self.phase_s) for i, s in enumerate(services)}


def _time_unit_seconds(text: str) -> float:
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    number, unit = text[:-1], text[-1]
    if unit not in units or not number.replace(".", "", 1).isdigit():
        raise ValueError(f"time_unit {text!r}: expected a number and s|m|h, e.g. '1m'")
    return float(number) * units[unit]


def load_profiles(path: Path = PROFILES_FILE) -> dict[str, Profile]:
    """Every profile of k6/profiles.json (keys starting with '_' are comments)."""
    data = json.loads(path.read_text())
    return {
        name: Profile(
            name=name,
            time_unit_s=_time_unit_seconds(spec["time_unit"]),
            start_rate=float(spec["start_rate"]),
            stages=tuple(Stage(float(s["duration_s"]), float(s["target"])) for s in spec["stages"]),
            gap_s=float(spec["gap_s"]),
            request_timeout_s=float(spec["request_timeout_s"]),
            push_interval_s=float(spec["push_interval_s"]),
            raw=spec,
        )
        for name, spec in data.items()
        if not name.startswith("_")
    }


def get_profile(name: str, path: Path = PROFILES_FILE) -> Profile:
    profiles = load_profiles(path)
    if name not in profiles:
        raise ValueError(f"profile {name!r} is unknown; expected one of {', '.join(profiles)}")
    return profiles[name]


def check_mode(mode: str, allow_both: bool = True) -> None:
    choices = MODE_CHOICES if allow_both else MODES
    if mode not in choices:
        raise ValueError(f"mode {mode!r} is unknown; expected one of {', '.join(choices)}")


def modes_for(mode: str) -> list[str]:
    """`both` runs coupled first (the seed's own setup), then isolated."""
    check_mode(mode)
    return list(MODES) if mode == "both" else [mode]


@dataclass
class Phase:
    """One k6 run: where its files are, when it ran, what it planned and what k6 reported."""

    mode: str
    profile: str
    run_id: str  # the k6 `run_id` tag on every series this phase wrote to Prometheus
    started_at: float  # unix seconds: the k6 run's t=0 (first moment its API answered)
    ended_at: float
    services: list[str]
    windows: dict[str, tuple[float, float]]  # service -> unix seconds under load
    planned_requests: dict[str, float]
    exit_code: int
    summary_path: str
    log_path: str
    generator_cpu_seconds: float | None  # user+system CPU of k6 (process or container)

    def summary(self) -> dict[str, Any]:
        return json.loads(Path(self.summary_path).read_text())

    def service_table(self) -> pd.DataFrame:
        """k6's own view per service: requests, failures, drops, latency percentiles (ms)."""
        return service_table(self.summary(), self.services, self.mode, self.planned_requests)


def service_table(
    summary: dict[str, Any], services: list[str], mode: str, planned: dict[str, float]
) -> pd.DataFrame:
    """One row per service from a k6 `--summary-export` JSON.

    k6 omits a metric that never received a sample (dropped_iterations when none was
    dropped), so absent means zero here, never an error.
    """
    metrics = summary.get("metrics", {})
    rows = []
    for service in services:
        reqs = metrics.get(f"http_reqs{{service:{service}}}", {})
        failed = metrics.get(f"http_req_failed{{service:{service}}}", {})
        duration = metrics.get(f"http_req_duration{{service:{service}}}", {})
        drop_key = (
            "dropped_iterations"
            if mode == "coupled"
            else f"dropped_iterations{{scenario:{service}}}"
        )
        dropped = metrics.get(drop_key, {}).get("count", 0)
        count = int(reqs.get("count", 0))
        rows.append(
            {
                "service": service,
                "requests": count,
                "planned_requests": round(planned.get(service, math.nan), 1),
                "reached_ratio": count / planned[service] if planned.get(service) else math.nan,
                "failed": int(
                    failed.get("passes", 0)
                ),  # k6: a "pass" of http_req_failed = a failure
                "error_rate": float(failed.get("value", 0.0)),
                "dropped_iterations": int(dropped),
                "p50_ms": duration.get("p(50)", math.nan),
                "p95_ms": duration.get("p(95)", math.nan),
                "p99_ms": duration.get("p(99)", math.nan),
            }
        )
    return pd.DataFrame(rows).set_index("service")


@dataclass
class LoadTestResult:
    profile: str
    mode: str
    phases: list[Phase]
    index_path: Path

    def table(self) -> pd.DataFrame:
        """Per (mode, service): k6's end-of-test numbers, side by side."""
        frames = [phase.service_table().assign(mode=phase.mode) for phase in self.phases]
        return pd.concat(frames).reset_index().set_index(["mode", "service"])


def feature_ranges(artifacts_dir: Path) -> dict[str, dict[str, float]]:
    """The manifest's training ranges: the load draws every feature within them."""
    manifest = manifest_io.load(Path(artifacts_dir) / manifest_io.MANIFEST_NAME)
    if "feature_ranges" not in manifest:
        raise KeyError(f"{artifacts_dir}/manifest.json has no feature_ranges (rerun notebook 01)")
    return manifest["feature_ranges"]


def k6_environment(
    stack: LoadGeneratorStack,
    profile: Profile,
    mode: str,
    run_id: str,
    ranges: dict[str, Any],
    targets: dict[str, str] | None = None,
) -> dict[str, str]:
    """Everything seed.js reads, plus the remote-write output's settings."""
    return {
        "PROFILE": profile.name,
        "MODE": mode,
        "RUN_ID": run_id,
        "TARGETS": json.dumps(targets or stack.load_target_urls),
        "FEATURE_RANGES": json.dumps(ranges),
        "K6_PROMETHEUS_RW_SERVER_URL": stack.remote_write_url,
        "K6_PROMETHEUS_RW_TREND_STATS": TREND_STATS,
        "K6_PROMETHEUS_RW_PUSH_INTERVAL": f"{profile.push_interval_s:g}s",
        "K6_NO_USAGE_REPORT": "true",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
    }


def k6_arguments(script: Path, summary_path: Path, api_port: int) -> list[str]:
    return [
        "run",
        "--no-usage-report",
        "--address",
        f"127.0.0.1:{api_port}",
        "--summary-export",
        str(summary_path),
        "--summary-trend-stats",
        "avg,min,med,max,p(50),p(90),p(95),p(99)",
        "--out",
        "experimental-prometheus-rw",
        str(script),
    ]


def process_cpu_seconds(pid: int) -> float | None:
    """user + system CPU seconds of a live process, from /proc (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15 of stat)


def generator_cpu_seconds(generator: ManagedProcess) -> float | None:
    """CPU seconds of the load generator so far: its own `cpu_seconds()` when the backend's
    generator has one (a container: the engine's stats are right even when the engine runs in a
    VM, where a host pid means nothing), else the process' user+system time from /proc."""
    own = getattr(generator, "cpu_seconds", None)
    if callable(own):
        return own()
    return process_cpu_seconds(generator.pid)


def live_request_count(api_url: str) -> int | None:
    """Requests k6 has completed so far, from its REST API (None while it is not answering)."""
    try:
        response = httpx.get(f"{api_url}/v1/metrics/http_reqs", timeout=1.0)
        if response.status_code != 200:
            return None
        return int(response.json()["data"]["attributes"]["sample"]["count"])
    except (httpx.HTTPError, KeyError, ValueError, TypeError):
        return None


def _k6_started(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/v1/status", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def watch(
    generator: ManagedProcess,
    api_url: str,
    planned_s: float,
    planned_total: float,
    description: str,
    progress: bool = True,
    on_tick: Callable[[float, int | None], None] | None = None,
) -> tuple[float, float, float | None]:
    """Wait for k6 to finish, with a progress bar; returns (started_at, ended_at, cpu_s).

    Bounded: past planned_s + START_STOP_MARGIN_S the run is stopped and TimeoutError raised.
    """
    # The text bar: JupyterLab redraws it in place, and an executed notebook (HTML report)
    # keeps ~100 updates per phase instead of one a second (the seed's 25-minute phase).
    from tqdm import tqdm

    refresh_every_s = max(1.0, planned_s / 100)
    last_refresh = -math.inf
    launched = time.time()
    deadline = time.monotonic() + planned_s + START_STOP_MARGIN_S
    started_at: float | None = None
    cpu_s: float | None = None
    bar = tqdm(total=round(planned_s), desc=description, unit="s", disable=not progress, leave=True)
    try:
        while generator.alive():
            if time.monotonic() > deadline:
                generator.stop()
                raise TimeoutError(
                    f"k6 ({description}) still running {planned_s + START_STOP_MARGIN_S:.0f} s "
                    f"after start; stopped it. Log tail:\n{generator.log_tail()}"
                )
            if started_at is None and _k6_started(api_url):
                started_at = time.time()
            count = live_request_count(api_url)
            cpu_s = generator_cpu_seconds(generator) or cpu_s
            if started_at is not None:
                bar.n = min(round(time.time() - started_at), bar.total)
                bar.set_postfix(requests=count, planned=round(planned_total), refresh=False)
                if time.monotonic() - last_refresh >= refresh_every_s:
                    bar.refresh()
                    last_refresh = time.monotonic()
            if on_tick is not None:
                on_tick(time.time() - (started_at or launched), count)
            time.sleep(1.0)  # pacing the progress display, not waiting for readiness
    finally:
        bar.close()
    return started_at or launched, time.time(), cpu_s


def run_phase(
    stack: LoadGeneratorStack,
    profile: Profile,
    mode: str,
    run_dir: Path,
    ranges: dict[str, Any],
    run_id: str,
    progress: bool = True,
    script: Path = SEED_SCRIPT,
) -> Phase:
    """One k6 run of `script` in `mode`; raises RuntimeError if k6 failed."""
    check_mode(mode, allow_both=False)
    services = list(stack.load_target_urls)
    phase_dir = Path(run_dir) / "k6" / mode
    phase_dir.mkdir(parents=True, exist_ok=True)
    summary_path, log_path = phase_dir / "summary.json", phase_dir / "k6.log"
    summary_path.unlink(missing_ok=True)
    api_port = net.free_port()
    tagged_run_id = f"{run_id}-{mode}"
    planned_each = profile.planned_iterations()
    planned_s = profile.duration_s(mode, len(services))
    generator = stack.start_load_generator(
        k6_arguments(script, summary_path, api_port),
        k6_environment(stack, profile, mode, tagged_run_id, ranges),
        log_path,
    )
    try:
        started_at, ended_at, cpu_s = watch(
            generator,
            f"http://127.0.0.1:{api_port}",
            planned_s,
            planned_each * len(services),
            f"k6 {profile.name}/{mode}",
            progress,
        )
    finally:
        exit_code = generator.stop()
    if exit_code != 0 or not summary_path.exists():
        raise RuntimeError(
            f"k6 {profile.name}/{mode} exited with status {exit_code}"
            f"{'' if summary_path.exists() else ' and wrote no summary'}; "
            f"log {log_path}:\n{generator.log_tail(30)}"
        )
    offsets = profile.service_windows(mode, services)
    return Phase(
        mode=mode,
        profile=profile.name,
        run_id=tagged_run_id,
        started_at=started_at,
        ended_at=ended_at,
        services=services,
        windows={s: (started_at + a, started_at + b) for s, (a, b) in offsets.items()},
        planned_requests={s: planned_each for s in services},
        exit_code=exit_code,
        summary_path=str(summary_path),
        log_path=str(log_path),
        generator_cpu_seconds=cpu_s,
    )


def run_load_test(
    stack: LoadGeneratorStack,
    profile: str,
    mode: str,
    artifacts_dir: Path,
    run_id: str | None = None,
    progress: bool = True,
) -> LoadTestResult:
    """Run the profile in each requested mode and index the phases in run_dir/k6/load_test.json.

    Arguments are validated before anything starts, so a typo fails in a second, not after a
    coupled phase of eight minutes.
    """
    chosen = get_profile(profile)
    modes = modes_for(mode)
    ranges = feature_ranges(Path(artifacts_dir))
    run_dir = Path(stack.run_dir)
    run_id = run_id or run_dir.name
    phases = []
    for number, m in enumerate(modes):
        if number:
            # A cool-down as long as isolated mode's gap between services: the next phase's
            # first rate window must not still hold the previous phase's traffic.
            time.sleep(chosen.gap_s)
        phases.append(run_phase(stack, chosen, m, run_dir, ranges, run_id, progress))
    index_path = run_dir / "k6" / INDEX_NAME
    index = {
        "profile": profile,
        "mode": mode,
        "run_id": run_id,
        "phases": [asdict(phase) for phase in phases],
    }
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    return LoadTestResult(profile, mode, phases, index_path)


def load_index(run_dir: Path) -> LoadTestResult:
    """Read a finished run's load-test index (written by run_load_test) back."""
    index_path = Path(run_dir) / "k6" / INDEX_NAME
    if not index_path.exists():
        raise FileNotFoundError(f"{index_path} not found: run notebook 04 (the load test) first")
    data = json.loads(index_path.read_text())
    phases = []
    for raw in data["phases"]:
        raw["windows"] = {s: tuple(w) for s, w in raw["windows"].items()}
        # The run folder may have moved since: its files are found relative to it.
        raw["summary_path"] = str(index_path.parent / raw["mode"] / "summary.json")
        raw["log_path"] = str(index_path.parent / raw["mode"] / "k6.log")
        phases.append(Phase(**raw))
    return LoadTestResult(data["profile"], data["mode"], phases, index_path)
