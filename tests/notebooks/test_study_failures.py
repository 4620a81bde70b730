"""What `make study` does when things go wrong mid-load, driven as a user would drive it.

- Ctrl-C: SIGINT to the study's process group (what a terminal sends) mid-load must stop
  everything — kernel, k6, services, Prometheus, exporter — remove the run's cgroups, and leave
  the run folder marked interrupted with what was measured so far.
- A service (or the Prometheus that measures them) killed mid-load: the study must exit
  non-zero and name it; a service's summary.json entry says so,
  with its figures after that moment marked not measured.

Both run notebook 04 (and 05) on a pre-trained model, in a subprocess of their own session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from helpers import net, paths
from helpers.net import free_lasting_port
from helpers.serving import ports
from helpers.serving.local import cgroups
from helpers.serving.protocol import run_id_of
from helpers.serving.services import SERVICE_NAMES

pytestmark = pytest.mark.notebooks
STUDY_BOUND_S = 300  # a smoke 04 + 05 runs in about a minute


def _ctrl_c_not_ignored() -> None:
    """A terminal's foreground job reacts to Ctrl-C. A shell starts a background job (`make
    test &`) with SIGINT ignored, and exec keeps that; the driver must not inherit it here."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_study(tmp_path: Path, artifacts_dir: Path, run_id: str, notebooks: str):
    env = dict(os.environ)
    for key in (*SERVICE_NAMES, "prometheus"):
        env[ports.variable(key)] = str(free_lasting_port())
    argv = [sys.executable, "-m", "helpers.study", "--profile", "smoke", "--mode", "coupled"]
    argv += ["--run-id", run_id, "--results-dir", str(tmp_path)]
    argv += ["--artifacts-dir", str(artifacts_dir), "--notebooks", notebooks]
    log = (tmp_path / f"{run_id}.log").open("w")
    driver = subprocess.Popen(
        argv, cwd=paths.REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=_ctrl_c_not_ignored,
    )  # fmt: skip
    return driver, tmp_path / run_id


def _wait_for_load(run_dir: Path, driver: subprocess.Popen) -> dict:
    """Until k6 runs against the stack: its log exists and the stack recorded its pids."""

    def loading():
        log = run_dir / "k6" / "coupled" / "k6.log"
        record = run_dir / "stack" / "stack.json"
        if log.exists() and "running" in log.read_text(errors="replace") and record.exists():
            return json.loads(record.read_text())
        return None

    return net.poll(loading, 120, "k6 running against the stack", 0.2, gone=net.exited(driver))


def _processes_of(run_dir: Path) -> list[psutil.Process]:
    """Every live process whose command line or cwd names the run folder (k6, Prometheus…)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if str(run_dir) in " ".join(process.info["cmdline"] or []):
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_ctrl_c_stops_everything_and_marks_the_run(tmp_path: Path, model_artifacts: Path):
    driver, run_dir = _start_study(tmp_path, model_artifacts, "ctrl-c", "04")
    try:
        record = _wait_for_load(run_dir, driver)
        os.killpg(driver.pid, signal.SIGINT)
        interrupted_at = time.monotonic()
        status = driver.wait(timeout=60)
        print(f"the study stopped {time.monotonic() - interrupted_at:.1f} s after Ctrl-C")
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert status == 130, (tmp_path / "ctrl-c.log").read_text()[-3000:]
    pids = [s["pid"] for s in record["services"].values()]
    pids += [record["prometheus"]["pid"], record["exporter"]["pid"]]
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert not _processes_of(run_dir), "k6, Prometheus or a kernel of the run survived Ctrl-C"
    layout = cgroups.detect_layout()
    if layout is not None:
        left = [r / cgroups.STUDY_PARENT / run_id_of(run_dir) for r in layout.roots.values()]
        assert not [d for d in left if d.exists()], "the run's cgroups were left behind"
    study = json.loads((run_dir / "study.json").read_text())
    assert study["interrupted"] is True and study["interrupted_in"] == "04_load_test"
    index = json.loads((run_dir / "k6" / "load_test.json").read_text())
    assert index["interrupted"] is True
    assert [p["interrupted"] for p in index["phases"]] == [True]
    assert (run_dir / "04_load_test.ipynb").exists()


def test_a_service_killed_mid_load_fails_the_study_and_is_named(
    tmp_path: Path, model_artifacts: Path
):
    driver, run_dir = _start_study(tmp_path, model_artifacts, "killed", "04,05")
    try:
        record = _wait_for_load(run_dir, driver)
        os.kill(record["services"]["go-api-onnx"]["pid"], signal.SIGKILL)
        status = driver.wait(timeout=STUDY_BOUND_S)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    output = (tmp_path / "killed.log").read_text()
    assert status == 1, output[-3000:]
    assert "go-api-onnx stopped at" in output
    summary = json.loads((run_dir / "summary.json").read_text())
    [event] = summary["service_exits"]
    assert event["service"] == "go-api-onnx" and event["how"] == "killed by SIGKILL"
    go = summary["services"]["go-api-onnx"]["coupled"]
    assert "killed by SIGKILL" in go["stopped"]
    assert go["measured_s"] < summary["services"]["python-api-onnx"]["coupled"]["measured_s"]
    verdicts = [c["verdict"] for c in summary["claims"]["coupled"]]
    assert "holds" not in verdicts, summary["claims"]["coupled"]


def test_prometheus_killed_mid_load_fails_the_study_and_is_named(
    tmp_path: Path, model_artifacts: Path
):
    # A dead Prometheus would read as quiet services: the stack watches it like a service.
    driver, run_dir = _start_study(tmp_path, model_artifacts, "no-prometheus", "04")
    try:
        record = _wait_for_load(run_dir, driver)
        os.kill(record["prometheus"]["pid"], signal.SIGKILL)
        status = driver.wait(timeout=STUDY_BOUND_S)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    output = (tmp_path / "no-prometheus.log").read_text()
    assert status == 1, output[-3000:]
    assert "prometheus stopped at" in output
    events = json.loads((run_dir / "stack" / "events.json").read_text())["service_exits"]
    assert [e["service"] for e in events] == ["prometheus"]
    assert events[0]["how"] == "killed by SIGKILL"
