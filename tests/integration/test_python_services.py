"""What only the two Python services must prove (the shared contract is test_contract.py's).

- Imports: the ONNX service loads neither scikit-learn nor scipy nor pandas, and the pickle
  service does not load pandas (scikit-learn would pull it in if it were installed, and the
  process would outgrow its 128 MiB). Checked in a subprocess of the service's own
  interpreter that runs the real start-up path (`iris_serving.server.prepare`: settings,
  hash check, model load, warm-up, app, telemetry) and then lists `sys.modules`.
- Memory after start, read from /proc of the real process after one prediction.
- Start-up failures: a tampered model, a bad setting or a missing manifest → exit status 2,
  one line on stderr that names the problem, nothing served.
- SIGTERM → exit status 0.

The study environment has no FastAPI, so nothing here imports a service: every check runs
the service's own interpreter (`.venvs/<name>`), as `make setup` builds it.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from helpers.net import free_port, wait_until_ready
from helpers.serving.services import ServiceSpec, all_services

pytestmark = pytest.mark.integration

PYTHON_SERVICES = ("python-api-pkl", "python-api-onnx")
MODULE = {"python-api-pkl": "pkl_api", "python-api-onnx": "onnx_api"}
MIB = 1024 * 1024
MEMORY_BUDGET_BYTES = 128 * MIB  # the container / cgroup limit of every service
START_TIMEOUT_S = 60.0  # two shared cores; importing scikit-learn takes seconds when busy
EXIT_TIMEOUT_S = 60.0
INSTANCE = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def _spec(name: str) -> ServiceSpec:
    spec = all_services()[name]
    if not Path(spec.argv[0]).exists():
        pytest.fail(f"{spec.argv[0]} does not exist: run `make setup`", pytrace=False)
    return spec


def _environment(
    spec: ServiceSpec, artifacts: Path, overrides: dict[str, str] | None = None
) -> tuple[int, dict[str, str]]:
    port, metrics_port = free_port(), free_port()
    while metrics_port == port:
        metrics_port = free_port()
    return port, spec.environment(artifacts, port, metrics_port, overrides=overrides)


@dataclass
class Started:
    process: subprocess.Popen[str]
    base_url: str
    log: Path


@contextmanager
def running(spec: ServiceSpec, artifacts: Path, log_dir: Path) -> Iterator[Started]:
    """The service as a real process, ready (polled /healthz); SIGTERM and reaped on exit."""
    port, env = _environment(spec, artifacts)
    log = log_dir / f"{spec.name}.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            spec.argv, cwd=spec.cwd, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{base_url}/healthz", timeout_s=START_TIMEOUT_S, process=process)
        yield Started(process, base_url, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _start_expecting_failure(
    spec: ServiceSpec, artifacts: Path, overrides: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    _, env = _environment(spec, artifacts, overrides)
    return subprocess.run(
        spec.argv,
        cwd=spec.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT_S,
        check=False,
    )


def _memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            fields[key] = int(value.split()[0])
    return fields


_LIST_MODULES = """
import json, sys
from iris_serving.server import prepare
from {module} import DEFAULT_MODEL_FILE, SERVICE_NAME
from {module}.model import load_predictor
service = prepare(SERVICE_NAME, DEFAULT_MODEL_FILE, load_predictor)
service.predictor.predict(__import__("numpy").zeros((1, 4)))
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after_start(name: str, artifacts: Path, exporter: str) -> set[str]:
    spec = _spec(name)
    _, env = _environment(spec, artifacts, {"OTEL_METRICS_EXPORTER": exporter})
    result = subprocess.run(
        [spec.argv[0], "-c", _LIST_MODULES.format(module=MODULE[name])],
        cwd=spec.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return {module.split(".")[0] for module in json.loads(result.stdout.splitlines()[-1])}


@pytest.mark.parametrize("exporter", ["prometheus", "otlp"])
def test_onnx_service_imports_no_sklearn_scipy_or_pandas(
    model_artifacts: Path, exporter: str
) -> None:
    loaded = _modules_after_start("python-api-onnx", model_artifacts, exporter)
    assert "onnxruntime" in loaded and "iris_serving" in loaded  # the real start-up ran
    assert loaded.isdisjoint({"sklearn", "scipy", "pandas"}), sorted(
        loaded & {"sklearn", "scipy", "pandas"}
    )


@pytest.mark.parametrize("exporter", ["prometheus", "otlp"])
def test_pickle_service_does_not_import_pandas(model_artifacts: Path, exporter: str) -> None:
    loaded = _modules_after_start("python-api-pkl", model_artifacts, exporter)
    assert "sklearn" in loaded  # the pipeline really was unpickled
    assert "pandas" not in loaded


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_memory_after_start_is_reported_and_within_budget(
    name: str, model_artifacts: Path, tmp_path: Path
) -> None:
    """RSS after start and one prediction, printed for the record (`pytest -s` or -rA).

    The assertion is on anonymous memory: under a cgroup limit without swap that is what
    cannot be given back, so it is what must fit in 128 MiB or the kernel OOM-kills the
    service. The file-backed part of RSS (shared-library pages) is charged too but can be
    dropped and re-read, so VmRSS above the budget means page-cache pressure, not a kill; the
    load test measures what that pressure costs. VmRSS is printed next to it, never hidden.
    """
    with running(_spec(name), model_artifacts, tmp_path) as service:
        response = httpx.post(f"{service.base_url}/predict", json=INSTANCE, timeout=30)
        assert response.status_code == 200
        memory = _memory_kib(service.process.pid)
    print(
        f"\n{name}: VmRSS {memory['VmRSS'] / 1024:.1f} MiB "
        f"(anon {memory['RssAnon'] / 1024:.1f} MiB, file {memory['RssFile'] / 1024:.1f} MiB, "
        f"shmem {memory['RssShmem'] / 1024:.1f} MiB) after start and one prediction"
    )
    resident_unreclaimable = (memory["RssAnon"] + memory["RssShmem"]) * 1024
    assert resident_unreclaimable < MEMORY_BUDGET_BYTES, memory


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_tampered_model_exits_2_before_loading(name: str, model_artifacts_copy: Path) -> None:
    spec = _spec(name)
    model = model_artifacts_copy / spec.model_file
    model.write_bytes(model.read_bytes() + b"\0")  # one byte more: a different sha256
    result = _start_expecting_failure(spec, model_artifacts_copy)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert spec.model_file in lines[0] and "sha256" in lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("name", "overrides", "named"),
    [
        ("python-api-pkl", {"PORT": "abc"}, "PORT"),
        ("python-api-onnx", {"PORT": "abc"}, "PORT"),
        ("python-api-pkl", {"PORT": "70000"}, "PORT"),
        ("python-api-onnx", {"OTEL_METRICS_EXPORTER": "statsd"}, "OTEL_METRICS_EXPORTER"),
        ("python-api-onnx", {"ORT_INTRA_OP_NUM_THREADS": "many"}, "ORT_INTRA_OP_NUM_THREADS"),
        ("python-api-onnx", {"ORT_ALLOW_SPINNING": "2"}, "ORT_ALLOW_SPINNING"),
        ("python-api-pkl", {"MODEL_MANIFEST": "/nonexistent/manifest.json"}, "manifest"),
        ("python-api-onnx", {"MODEL_PATH": "/nonexistent/model.onnx"}, "model.onnx"),
    ],
)
def test_bad_configuration_exits_2_with_one_line(
    name: str, overrides: dict[str, str], named: str, model_artifacts: Path
) -> None:
    result = _start_expecting_failure(_spec(name), model_artifacts, overrides)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_sigterm_drains_and_exits_0(name: str, model_artifacts: Path, tmp_path: Path) -> None:
    with running(_spec(name), model_artifacts, tmp_path) as service:
        assert httpx.post(f"{service.base_url}/predict", json=INSTANCE).status_code == 200
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=EXIT_TIMEOUT_S) == 0, service.log.read_text()
