"""What only go-api-onnx must prove (the shared contract is test_contract.py's), on the real
binary (.build/go-api-onnx) started as a process:

- The measurement and as-published settings (services/CONTRACT.md, last section): every value
  of PREDICT_STAGE, ACCESS_LOG, OTEL_TRACES_EXPORTER (+ OTEL_BSP_SCHEDULE_DELAY),
  OTEL_METRICS_EXPORTER, ORT_INTRA_OP_NUM_THREADS, ORT_ALLOW_SPINNING, GOMAXPROCS and
  GODEBUG=containermaxprocs=0 starts and serves a valid /predict, and the start-up log says
  what was asked (the study reads GOMAXPROCS, the access log and the exporters from it).
- Every bad value exits 2 with one stderr line naming the variable, the value and what was
  expected — GOMAXPROCS included, which the Go runtime itself would silently ignore.
- `noop` and `parse` answer the fixed warm-up prediction; `parse` still answers malformed
  requests with the contract's codes; telemetry off binds no scrape endpoint.
- Spans reach an OTLP/HTTP receiver — `OtlpSink`, the stand-in for the collector from
  test_python_services — named "POST /predict", none for /healthz, and a SIGTERM flushes them.
- GOMAXPROCS under a 0.5 CPU cgroup: the runtime's cgroup-aware default, the host's CPUs with
  the GODEBUG switch (what the post's go.mod meant), 1 when asked.
- The ZipMap model answers what the plain model answers (within 1e-6); every zoo model —
  the float64-input hist_gradient_boosting, and float64-input variants of svc/mlp/knn whose
  probabilities are float64 too — is served with probabilities equal to in-process ONNX
  Runtime on the same file within 1e-6; a model with no ONNX file exits 2 naming it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from test_python_services import (  # the stand-in OTLP receiver and the parse stage's table
    PARSE_STAGE_ERRORS,
    OtlpSink,
    otlp_sink,  # noqa: F401  (a fixture)
)

from helpers.model import manifest as manifest_io
from helpers.net import free_port, poll, wait_until_ready
from helpers.serving.local import cgroup_removal, cgroups
from helpers.serving.protocol import gomaxprocs_from_log
from helpers.serving.services import all_services
from helpers.zoo import classifiers

pytestmark = pytest.mark.integration

NAME = "go-api-onnx"
INSTANCE = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
HEALTH_KEYS = {"status", "model_sha256", "runtime", "framework", "startup"}
EXIT_TIMEOUT_S = 60.0
TOLERANCE = 1e-6  # services/CONTRACT.md: across implementations of the same graph
CONTRACT_INSTANCES = json.loads(
    (Path(__file__).resolve().parents[1] / "contract" / "instances.json").read_text()
)
# The contract's success rows (the edge group probes float32 limits, row 11, per model).
SUCCESS_ROWS = [
    row for group in ("iris", "missing", "random") for row in CONTRACT_INSTANCES["groups"][group]
]
DOUBLE_VARIANTS = ("svc", "mlp", "knn")  # skl2onnx's float64 graphs output float64


def _spec():
    spec = all_services()[NAME]
    if not Path(spec.argv[0]).exists():
        pytest.fail(f"{spec.argv[0]} does not exist: run `make setup`", pytrace=False)
    return spec


def _start_expecting_failure(
    artifacts: Path, overrides: dict[str, str], timeout_s: float = EXIT_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    spec = _spec()
    env = spec.environment(artifacts, free_port(), None, overrides=overrides)
    return subprocess.run(
        spec.argv, cwd=spec.cwd, env=env, capture_output=True, text=True, timeout=timeout_s,
        check=False,
    )  # fmt: skip


def _labels(manifest_dir: Path) -> list[str]:
    return manifest_io.load(manifest_dir / manifest_io.MANIFEST_NAME)["class_labels"]


def _assert_prediction(prediction: dict[str, Any], labels: list[str]) -> None:
    assert set(prediction) == {"label", "class_id", "probabilities"}, prediction
    assert list(prediction["probabilities"]) == labels, prediction
    probabilities = list(prediction["probabilities"].values())
    assert prediction["class_id"] == probabilities.index(max(probabilities)), prediction
    assert prediction["label"] == labels[prediction["class_id"]], prediction
    assert math.isclose(sum(probabilities), 1.0, abs_tol=1e-5), prediction


def _onnxruntime(model: Path, instances: list[dict[str, Any]]) -> np.ndarray:
    """In-process ONNX Runtime on the very file, fed what the service feeds it: the JSON
    numbers as float64, cast to the graph's input type; probabilities by the manifest's
    output name, or read from ZipMap's maps in class-id order."""
    import onnxruntime as ort

    recorded = manifest_io.load(model.parent / manifest_io.MANIFEST_NAME)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    dtype = np.float64 if graph_input.type == "tensor(double)" else np.float32
    features = recorded["feature_names"]
    rows = np.array(
        [[np.nan if i.get(f) is None else i[f] for f in features] for i in instances],
        dtype=np.float64,
    ).astype(dtype)
    zipmaps = [o.name for o in session.get_outputs() if o.type.startswith("seq(map(")]
    if zipmaps:
        (maps,) = session.run(zipmaps, {graph_input.name: rows})
        return np.array([[m[k] for k in range(len(recorded["class_labels"]))] for m in maps])
    name = recorded.get("onnx", {}).get("probabilities_output", "probabilities")
    (probabilities,) = session.run([name], {graph_input.name: rows})
    return np.asarray(probabilities, dtype=np.float64)


def _predict_all(base_url: str, instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every instance through /predict/batch (≤ 1024 a request) and the first through /predict."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        predictions: list[dict[str, Any]] = []
        for start in range(0, len(instances), 1024):
            response = client.post("/predict/batch", json={"instances": instances[start:][:1024]})
            assert response.status_code == 200, response.text[:300]
            predictions += response.json()["predictions"]
        single = client.post("/predict", json=instances[0])
        assert single.status_code == 200, single.text[:300]
        assert single.json()["class_id"] == predictions[0]["class_id"]
    return predictions


def _assert_close(predictions: list[dict], expected: np.ndarray, labels: list[str]) -> None:
    assert len(predictions) == len(expected)
    for index, (prediction, want) in enumerate(zip(predictions, expected, strict=True)):
        _assert_prediction(prediction, labels)
        got = np.array([prediction["probabilities"][label] for label in labels])
        assert np.max(np.abs(got - want)) <= TOLERANCE, (index, prediction, want.tolist())


# --- every setting value starts and serves ----------------------------------------------------

SETTINGS_THAT_SERVE = {
    "explicit-defaults": {
        "PREDICT_STAGE": "full", "ACCESS_LOG": "0", "OTEL_TRACES_EXPORTER": "none",
        "ORT_INTRA_OP_NUM_THREADS": "1", "ORT_ALLOW_SPINNING": "0",
    },
    "parse": {"PREDICT_STAGE": "parse"},
    "noop": {"PREDICT_STAGE": "noop"},
    "access-log": {"ACCESS_LOG": "1"},
    "ort-defaults": {"ORT_INTRA_OP_NUM_THREADS": "0", "ORT_ALLOW_SPINNING": "1"},
    "gomaxprocs-1": {"GOMAXPROCS": "1"},
    "gomaxprocs-2": {"GOMAXPROCS": "2"},
    "host-cpus": {"GODEBUG": "containermaxprocs=0,updatemaxprocs=0"},
    "span-delay": {"OTEL_BSP_SCHEDULE_DELAY": "3000"},
    "http-limits": {
        "HTTP_MAX_HEADER_BYTES": "1024", "HTTP_READ_HEADER_TIMEOUT": "1", "HTTP_READ_TIMEOUT": "1",
    },
}  # fmt: skip


@pytest.mark.parametrize("metrics", [True, False], ids=["metrics-on", "metrics-off"])
@pytest.mark.parametrize("overrides", SETTINGS_THAT_SERVE.values(), ids=SETTINGS_THAT_SERVE)
def test_each_setting_value_starts_and_serves(
    overrides: dict[str, str],
    metrics: bool,
    launch_service: Callable[..., Any],
    model_artifacts: Path,
) -> None:
    service = launch_service(
        NAME, artifacts_dir=model_artifacts, metrics=metrics, overrides=overrides
    )
    labels = _labels(model_artifacts)
    with httpx.Client(base_url=service.base_url, timeout=30) as client:
        for _ in range(3):
            response = client.post("/predict", json=INSTANCE)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/json"
            _assert_prediction(response.json(), labels)
        stage = overrides.get("PREDICT_STAGE", "full")
        health = client.get("/healthz").json()
        assert set(health) == HEALTH_KEYS | ({"predict_stage"} if stage != "full" else set()), (
            health
        )
        assert health.get("predict_stage", "full") == stage

    log = service.log_path.read_text()
    start = json.loads(next(line for line in log.splitlines() if '"msg":"starting"' in line))
    assert start["predict_stage"] == stage
    assert start["access_log"] is (overrides.get("ACCESS_LOG") == "1")
    assert start["metrics_exporter"] == ("prometheus" if metrics else "none")
    assert start["intra_op_threads"] == int(overrides.get("ORT_INTRA_OP_NUM_THREADS", "1"))
    assert start["allow_spinning"] is (overrides.get("ORT_ALLOW_SPINNING") == "1")
    gomaxprocs = gomaxprocs_from_log(log)
    if "GOMAXPROCS" in overrides:
        assert gomaxprocs == int(overrides["GOMAXPROCS"]), log
    elif "GODEBUG" in overrides:
        assert gomaxprocs == start["num_cpu"], log  # the CPUs of the affinity mask
    else:
        assert gomaxprocs is not None and 1 <= gomaxprocs <= start["num_cpu"], log
    listening = json.loads(next(line for line in log.splitlines() if '"msg":"listening"' in line))
    assert listening["max_header_bytes"] == int(overrides.get("HTTP_MAX_HEADER_BYTES", "16384"))
    assert listening["read_header_timeout_s"] == int(overrides.get("HTTP_READ_HEADER_TIMEOUT", "5"))
    assert listening["read_timeout_s"] == int(overrides.get("HTTP_READ_TIMEOUT", "15"))
    assert health["framework"] == listening["framework"] == "chi"
    times = ("imports_done_unix", "model_loaded_unix", "listening_unix")
    assert [health["startup"][key] for key in times] == [listening[key] for key in times]
    # chi's middleware.Logger writes its line before the response is flushed.
    access_lines = [line for line in log.splitlines() if '/predict HTTP/1.1" from ' in line]
    assert len(access_lines) == (3 if overrides.get("ACCESS_LOG") == "1" else 0), log


BAD_SETTINGS = [
    ("PREDICT_STAGE", "fast", {}),
    ("PREDICT_STAGE", "none", {}),
    ("ACCESS_LOG", "yes", {}),
    ("ACCESS_LOG", "2", {}),
    ("OTEL_TRACES_EXPORTER", "jaeger", {}),
    ("OTEL_TRACES_EXPORTER", "console", {}),
    ("OTEL_BSP_SCHEDULE_DELAY", "3s", {"OTEL_TRACES_EXPORTER": "otlp"}),
    ("OTEL_BSP_SCHEDULE_DELAY", "0", {}),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318", {"OTEL_TRACES_EXPORTER": "otlp"}),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x", {"OTEL_METRICS_EXPORTER": "otlp"}),
    ("OTEL_METRICS_EXPORTER", "statsd", {}),
    ("ORT_INTRA_OP_NUM_THREADS", "many", {}),
    ("ORT_ALLOW_SPINNING", "2", {}),
    ("GOMAXPROCS", "0", {}),
    ("GOMAXPROCS", "-1", {}),
    ("GOMAXPROCS", "two", {}),
    ("GOMAXPROCS", "1.5", {}),
    ("PORT", "abc", {}),
    ("HTTP_MAX_HEADER_BYTES", "512", {}),
    ("HTTP_MAX_HEADER_BYTES", "16k", {}),
    ("HTTP_READ_HEADER_TIMEOUT", "0", {}),
    ("HTTP_READ_TIMEOUT", "5s", {}),
]


@pytest.mark.parametrize(
    ("variable", "value", "context"),
    BAD_SETTINGS,
    ids=[f"{variable}={value}" for variable, value, _ in BAD_SETTINGS],
)
def test_bad_setting_value_exits_2_naming_variable_and_value(
    variable: str, value: str, context: dict[str, str], model_artifacts: Path
) -> None:
    result = _start_expecting_failure(model_artifacts, {**context, variable: value})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f'{variable}="{value}"' in lines[0] and "expected" in lines[0], lines
    assert result.stdout == ""  # nothing logged: it stopped before the logger, model and socket


# --- the overhead ladder's stages -------------------------------------------------------------


@pytest.mark.parametrize("stage", ["noop", "parse"])
def test_measurement_stage_answers_the_fixed_warmup_prediction(
    stage: str, launch_service: Callable[..., Any], model_artifacts: Path
) -> None:
    """`noop` and `parse` answer the prediction for an all-missing instance (the start-up
    warm-up) whatever the body; `parse` answers every malformed request as `full` does."""
    labels = _labels(model_artifacts)
    service = launch_service(
        NAME, artifacts_dir=model_artifacts, metrics=False, overrides={"PREDICT_STAGE": stage}
    )
    with httpx.Client(base_url=service.base_url, timeout=30) as client:
        assert client.get("/healthz").json()["predict_stage"] == stage
        first = client.post("/predict", json=INSTANCE)
        second = client.post("/predict", json={"petal_length": 6.5, "petal_width": 2.4})
        assert first.status_code == second.status_code == 200
        assert first.content == second.content  # fixed, not computed from the body
        warmup = _onnxruntime(model_artifacts / "model.onnx", [{}])
        _assert_close([first.json()], warmup, labels)

        batch = client.post("/predict/batch", json={"instances": [INSTANCE, {}, INSTANCE]})
        assert batch.status_code == 200, batch.text
        assert batch.json()["predictions"] == [first.json()] * (3 if stage == "parse" else 1)

        if stage == "noop":  # the body is read but never looked at
            garbage = client.post("/predict", content=b"not json", headers={"content-type": "x"})
            assert garbage.status_code == 200 and garbage.content == first.content
            return
        for path, content_type, body, status, code, field_name in PARSE_STAGE_ERRORS:
            response = client.post(path, content=body, headers={"content-type": content_type})
            context = f"{path} {body[:40]!r}: {response.status_code} {response.text[:200]}"
            assert response.status_code == status, context
            error = response.json()["error"]
            assert error["code"] == code, context
            assert error.get("field") == field_name, context


def test_telemetry_off_binds_no_scrape_endpoint(
    launch_service: Callable[..., Any], model_artifacts: Path
) -> None:
    """OTEL_METRICS_EXPORTER=none without spans: nothing listens where /metrics would be (and
    no recorder wraps the router: internal/telemetry's TestTelemetryOffInstallsNothing)."""
    metrics_port = free_port()
    service = launch_service(
        NAME,
        artifacts_dir=model_artifacts,
        metrics=False,
        overrides={"OTEL_EXPORTER_PROMETHEUS_PORT": str(metrics_port)},
    )
    assert httpx.post(f"{service.base_url}/predict", json=INSTANCE, timeout=30).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
    assert '"metrics_exporter":"none","traces_exporter":"none"' in service.log_path.read_text()


# --- spans ------------------------------------------------------------------------------------


@pytest.mark.parametrize("metrics", ["prometheus", "none", "otlp"])
def test_traces_reach_an_otlp_receiver(
    metrics: str,
    launch_service: Callable[..., Any],
    model_artifacts: Path,
    otlp_sink: OtlpSink,  # noqa: F811  (the imported fixture)
) -> None:
    """OTEL_TRACES_EXPORTER=otlp: a span per POST /predict reaches the stand-in receiver, with
    metrics scraped, off or pushed; /healthz is neither traced nor recorded."""
    overrides = {"OTEL_TRACES_EXPORTER": "otlp", **otlp_sink.environment()}
    if metrics == "otlp":
        overrides["OTEL_METRICS_EXPORTER"] = "otlp"
    service = launch_service(
        NAME, artifacts_dir=model_artifacts, metrics=metrics == "prometheus", overrides=overrides
    )
    with httpx.Client(base_url=service.base_url, timeout=30) as client:
        for _ in range(5):
            response = client.post("/predict", json=INSTANCE)
            assert response.status_code == 200, response.text
        assert client.get("/healthz").status_code == 200

    def server_spans() -> list[str] | None:
        names, _ = otlp_sink.spans()
        return names if names.count("POST /predict") >= 5 else None

    names = poll(server_spans, timeout_s=30, what="5 'POST /predict' spans at the OTLP sink")
    _, services = otlp_sink.spans()
    assert services == {NAME}, services
    assert not [n for n in names if "healthz" in n], names
    assert '"traces_exporter":"otlp"' in service.log_path.read_text()
    if metrics == "prometheus":
        text = httpx.get(service.metrics_url, timeout=10).text
        assert 'http_route="/predict"' in text and "http_server_request_duration_seconds" in text
        assert "/healthz" not in text
    if metrics == "otlp":
        poll(lambda: otlp_sink.received("/v1/metrics"), timeout_s=30, what="metrics at the sink")


def test_sigterm_flushes_pending_spans(
    launch_service: Callable[..., Any],
    model_artifacts: Path,
    otlp_sink: OtlpSink,  # noqa: F811
) -> None:
    """With a 10-minute schedule delay the spans wait in the BatchSpanProcessor; SIGTERM
    exports them before the process exits 0."""
    overrides = {
        "OTEL_TRACES_EXPORTER": "otlp",
        **otlp_sink.environment(),
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
    }
    service = launch_service(
        NAME, artifacts_dir=model_artifacts, metrics=False, overrides=overrides
    )
    for _ in range(3):
        assert (
            httpx.post(f"{service.base_url}/predict", json=INSTANCE, timeout=30).status_code == 200
        )
    assert otlp_sink.spans()[0].count("POST /predict") == 0  # still batched
    assert service.stop() == 0, service.log_path.read_text()
    assert otlp_sink.spans()[0].count("POST /predict") == 3


def test_the_published_configuration_serves(
    launch_service: Callable[..., Any],
    model_artifacts: Path,
    otlp_sink: OtlpSink,  # noqa: F811
) -> None:
    """Every as-published factor at once (docs/original-post.md): access log, spans every 3 s,
    the ZipMap model with all outputs fetched, ORT's default pool spinning, GOMAXPROCS = host
    CPUs."""
    overrides = {
        "ACCESS_LOG": "1",
        "OTEL_TRACES_EXPORTER": "otlp",
        **otlp_sink.environment(),
        "OTEL_BSP_SCHEDULE_DELAY": "3000",
        "MODEL_PATH": str(model_artifacts / "model_zipmap.onnx"),
        "ORT_INTRA_OP_NUM_THREADS": "0",
        "ORT_ALLOW_SPINNING": "1",
        "GODEBUG": "containermaxprocs=0,updatemaxprocs=0",
    }
    service = launch_service(NAME, artifacts_dir=model_artifacts, overrides=overrides)
    health = httpx.get(f"{service.base_url}/healthz", timeout=30).json()
    assert "zipmap" in health["runtime"] and "all 2 outputs fetched" in health["runtime"], health
    expected = _onnxruntime(model_artifacts / "model.onnx", SUCCESS_ROWS)
    _assert_close(_predict_all(service.base_url, SUCCESS_ROWS), expected, _labels(model_artifacts))
    poll(lambda: otlp_sink.spans()[0], timeout_s=30, what="spans at the OTLP sink")


# --- GOMAXPROCS under the study's CPU limit ---------------------------------------------------


@pytest.fixture
def half_cpu_cgroup() -> Iterator[cgroups.Cgroup]:
    run_id = f"go-test-{os.getpid()}"
    group = cgroups.create_cgroup(run_id, NAME, cpu_cores=0.5)
    if not group.enforced:
        pytest.skip(f"no cgroup for a 0.5 CPU limit: {group.reason}")
    yield group
    cgroup_removal.remove_cgroup(group)
    cgroup_removal.remove_run(run_id)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"GODEBUG": "containermaxprocs=0,updatemaxprocs=0"}, {"GOMAXPROCS": "1"}],
    ids=["runtime-default", "host-cpus", "gomaxprocs-1"],
)
def test_gomaxprocs_under_half_a_cpu(
    overrides: dict[str, str],
    half_cpu_cgroup: cgroups.Cgroup,
    model_artifacts: Path,
    tmp_path: Path,
) -> None:
    """Go ≥ 1.25 with go ≥ 1.25 in go.mod: the cgroup limit rounded up, never below 2, and
    never above the CPUs of the affinity mask; GODEBUG=containermaxprocs=0 gives those CPUs
    (the post's go 1.23.2); GOMAXPROCS=N wins. The service logs what the runtime chose."""
    spec = _spec()
    port = free_port()
    env = spec.environment(model_artifacts, port, None, overrides=overrides)
    log_path = tmp_path / "go.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            spec.argv, cwd=spec.cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=cgroups.join_before_exec(half_cpu_cgroup),
        )  # fmt: skip
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/healthz", timeout_s=60, process=process)
        assert httpx.post(f"http://127.0.0.1:{port}/predict", json=INSTANCE).status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=EXIT_TIMEOUT_S) == 0
    text = log_path.read_text()
    num_cpu = int(re.search(r'"num_cpu":(\d+)', text).group(1))
    if "GOMAXPROCS" in overrides:
        expected = 1
    elif "GODEBUG" in overrides:
        expected = num_cpu
    else:
        expected = min(num_cpu, max(2, math.ceil(0.5)))
    assert gomaxprocs_from_log(text) == expected, text
    print(f"\n0.5 CPU, {overrides or 'defaults'}: GOMAXPROCS={expected} (host CPUs {num_cpu})")


# --- models beyond the default ----------------------------------------------------------------


def test_zipmap_model_answers_what_the_plain_model_answers(
    launch_service: Callable[..., Any], model_artifacts: Path
) -> None:
    labels = _labels(model_artifacts)
    manifest = manifest_io.load(model_artifacts / manifest_io.MANIFEST_NAME)
    plain = launch_service(NAME, artifacts_dir=model_artifacts, metrics=False)
    zipmap = launch_service(
        NAME,
        artifacts_dir=model_artifacts,
        metrics=False,
        overrides={"MODEL_PATH": str(model_artifacts / "model_zipmap.onnx")},
    )
    health = httpx.get(f"{zipmap.base_url}/healthz", timeout=30).json()
    assert health["model_sha256"] == manifest["artifacts"]["model_zipmap.onnx"]["sha256"]
    assert "zipmap" in health["runtime"], health
    from_plain = _predict_all(plain.base_url, SUCCESS_ROWS)
    expected = np.array([[p["probabilities"][label] for label in labels] for p in from_plain])
    _assert_close(_predict_all(zipmap.base_url, SUCCESS_ROWS), expected, labels)
    reference = _onnxruntime(model_artifacts / "model_zipmap.onnx", SUCCESS_ROWS)
    _assert_close(from_plain, reference, labels)


ZOO_NAMES = [*classifiers.KNOWN, *(f"{name}_double" for name in DOUBLE_VARIANTS)]


@pytest.fixture(scope="module")
def zoo_dirs(model_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The smoke-size zoo next to a copy of the seed's manifest (its split), plus float64
    variants of the models whose float64 graphs output float64 probabilities."""
    seed_dir = tmp_path_factory.mktemp("go-zoo")
    (seed_dir / manifest_io.MANIFEST_NAME).write_bytes(
        (model_artifacts / manifest_io.MANIFEST_NAME).read_bytes()
    )
    specs = [*classifiers.KNOWN.values()] + [
        dataclasses.replace(classifiers.KNOWN[name], name=f"{name}_double", input_types=("double",))
        for name in DOUBLE_VARIANTS
    ]
    built = classifiers.build_all(specs, seed_dir, profile="smoke", n_random=200)
    return {model.spec.name: model.artifacts_dir for model in built}


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_zoo_model_is_served_like_onnxruntime_in_process(
    name: str, zoo_dirs: dict[str, Path], launch_service: Callable[..., Any]
) -> None:
    model_dir = zoo_dirs[name]
    recorded = manifest_io.load(model_dir / manifest_io.MANIFEST_NAME)
    if "model.onnx" not in recorded["artifacts"]:  # skl2onnx could not convert it
        done = _start_expecting_failure(model_dir, {})
        assert done.returncode == 2 and "model.onnx" in done.stderr, done.stderr
        return
    service = launch_service(NAME, artifacts_dir=model_dir, metrics=False)
    health = httpx.get(f"{service.base_url}/healthz", timeout=30).json()
    assert health["model_sha256"] == recorded["artifacts"]["model.onnx"]["sha256"]
    input_type = {"float": "float32", "double": "float64"}[recorded["onnx"]["input_type"]]
    assert f"input {input_type}" in health["runtime"], health
    if name.endswith("_double"):
        assert "probabilities float64 tensor" in health["runtime"], health
    expected = _onnxruntime(model_dir / "model.onnx", SUCCESS_ROWS)
    _assert_close(_predict_all(service.base_url, SUCCESS_ROWS), expected, recorded["class_labels"])
