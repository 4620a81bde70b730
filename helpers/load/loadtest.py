"""Run the seed's load test (k6/seed.js) against a stack and keep what it says in the run folder.

Each mode is one k6 run ("phase"); its files go to `run_dir/k6/<mode>/` (k6.log, summary.json),
and `run_dir/k6/load_test.json` indexes the phases with their time windows — all the analysis
needs to find them in Prometheus later. The profile is frozen into `run_dir/k6/profile.json`
before k6 starts (helpers.load.profiles), and the feature ranges come from the manifest the
stack froze (`run_dir/stack/manifest.json`): what k6 was told is what the report says.

Ctrl-C stops k6 gracefully and then the stack, and the index is still written, with the
interrupted phase marked: the run folder keeps what was measured so far.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from helpers import files, paths
from helpers.load import k6, profiles
from helpers.load.profiles import Profile
from helpers.serving.protocol import Stack, feature_ranges

SEED_SCRIPT = paths.K6_DIR / "seed.js"
INDEX_NAME = "load_test.json"


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
    planned_requests: int  # per service (Profile.planned_requests)
    exit_code: int
    summary_path: str
    log_path: str
    generator_cpu_seconds: float | None  # user+system CPU of k6 (process or container)
    interrupted: bool = False

    def summary(self) -> dict[str, Any]:
        path = Path(self.summary_path)
        return json.loads(path.read_text()) if path.exists() else {"metrics": {}}

    def service_table(self) -> pd.DataFrame:
        """k6's own view per service: requests, failures, drops, latency percentiles (ms)."""
        return service_table(self.summary(), self.services, self.mode, self.planned_requests)


def service_table(
    summary: dict[str, Any], services: list[str], mode: str, planned: int
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
        count = int(reqs.get("count", 0))
        rows.append(
            {
                "service": service,
                "requests": count,
                "planned_requests": int(planned),
                "reached_ratio": count / planned if planned else math.nan,
                "failed": int(failed.get("passes", 0)),  # k6: a "pass" of http_req_failed fails
                "error_rate": float(failed.get("value", 0.0)),
                "dropped_iterations": int(metrics.get(drop_key, {}).get("count", 0)),
                "p50_ms": duration.get("p(50)", math.nan),
                "p95_ms": duration.get("p(95)", math.nan),
                "p99_ms": duration.get("p(99)", math.nan),
            }
        )
    return pd.DataFrame(rows).set_index("service")


class PhaseInterrupted(KeyboardInterrupt):
    """Ctrl-C during a phase; `.phase` is the part that ran (its windows end at the stop)."""

    def __init__(self, phase: Phase) -> None:
        super().__init__(f"load test interrupted in its {phase.mode} phase")
        self.phase = phase


@dataclass
class LoadTestResult:
    profile: str
    mode: str
    phases: list[Phase]
    index_path: Path
    interrupted: bool = False

    def table(self) -> pd.DataFrame:
        """Per (mode, service): k6's end-of-test numbers, side by side."""
        frames = [phase.service_table().assign(mode=phase.mode) for phase in self.phases]
        return pd.concat(frames).reset_index().set_index(["mode", "service"])


def run_phase(
    stack: Stack,
    profile: Profile,
    mode: str,
    run_id: str,
    progress: bool = True,
    script: Path = SEED_SCRIPT,
) -> Phase:
    """One k6 run of `script` in `mode`; raises RuntimeError if k6 failed, PhaseInterrupted
    (carrying what was measured) on Ctrl-C."""
    profiles.check_mode(mode, allow_both=False)
    run_dir = Path(stack.run_dir)
    services = list(stack.load_target_urls)
    tagged_run_id = f"{run_id}-{mode}"
    env = k6.environment(
        stack,
        tagged_run_id,
        stack.load_target_urls,
        feature_ranges(run_dir),
        push_interval_s=profile.push_interval_s,
        PROFILE=profile.name,
        PROFILE_JSON=json.dumps(profile.raw),
        MODE=mode,
    )
    planned = profile.planned_requests()

    def phase_of(result: k6.K6Run) -> Phase:
        offsets = profile.service_windows(mode, services)
        windows = {
            s: (result.started_at + a, result.started_at + b) for s, (a, b) in offsets.items()
        }
        if result.interrupted:  # the windows end where the measurement ended
            windows = {s: (a, min(b, result.ended_at)) for s, (a, b) in windows.items()}
        return Phase(
            mode=mode,
            profile=profile.name,
            run_id=tagged_run_id,
            started_at=result.started_at,
            ended_at=result.ended_at,
            services=services,
            windows=windows,
            planned_requests=planned,
            exit_code=result.exit_code,
            summary_path=str(result.summary_path),
            log_path=str(result.log_path),
            generator_cpu_seconds=result.cpu_seconds,
            interrupted=result.interrupted,
        )

    try:
        result = k6.run(
            stack,
            script,
            env,
            run_dir / "k6" / mode,
            profile.duration_s(mode, len(services)),
            f"k6 {profile.name}/{mode}",
            planned_requests=planned * len(services),
            remote_write=True,
            progress=progress,
        )
    except k6.Interrupted as stopped:
        raise PhaseInterrupted(phase_of(stopped.run)) from None
    return phase_of(result)


def run_load_test(
    stack: Stack,
    profile: str,
    mode: str,
    run_id: str | None = None,
    progress: bool = True,
    profiles_file: Path = profiles.PROFILES_FILE,
) -> LoadTestResult:
    """Run the profile in each requested mode and index the phases in run_dir/k6/load_test.json.

    Arguments are validated before anything starts, so a typo fails in a second, not after a
    coupled phase of eight minutes.
    """
    chosen = profiles.get_profile(profile, profiles_file)
    modes = profiles.modes_for(mode)
    run_dir = Path(stack.run_dir)
    profiles.freeze(chosen, run_dir)
    run_id = run_id or run_dir.name
    result = LoadTestResult(profile, mode, [], run_dir / "k6" / INDEX_NAME)
    try:
        for number, m in enumerate(modes):
            if number:
                # A cool-down as long as isolated mode's gap between services: the next phase's
                # first rate window must not still hold the previous phase's traffic.
                time.sleep(chosen.gap_s)
            result.phases.append(run_phase(stack, chosen, m, run_id, progress))
    except PhaseInterrupted as stopped:
        result.phases.append(stopped.phase)
        result.interrupted = True
        stack.stop()  # Ctrl-C stops the run, not just k6: nothing keeps the budget busy
        raise
    finally:
        write_index(result, run_id)
    return result


def write_index(result: LoadTestResult, run_id: str) -> Path:
    result.index_path.parent.mkdir(parents=True, exist_ok=True)
    index = {
        "profile": result.profile,
        "mode": result.mode,
        "run_id": run_id,
        "interrupted": result.interrupted,
        "phases": [asdict(phase) for phase in result.phases],
    }
    files.write_json(result.index_path, index)
    return result.index_path


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
    return LoadTestResult(
        data["profile"], data["mode"], phases, index_path, data.get("interrupted", False)
    )
