"""One contract suite, three services (services/CONTRACT.md).

Every test runs against python-api-pkl, python-api-onnx and go-api-onnx, each a real process on
free ports with its Prometheus endpoint on (tests/integration/conftest.py), or against the URLs
in CONTRACT_TARGETS. The two Python services run twice, once per FRAMEWORK (`lean`, the
default, and `fastapi`): how the routes are written must not change a byte of what a client
can rely on. The vectors are data in tests/contract/; expected predictions come from
the pickled pipeline in this process, never from a stored answer.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import math
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers.model import manifest as manifest_io
from helpers.model import train
from helpers.net import free_port
from helpers.serving.services import SERVICE_NAMES, all_services

pytestmark = pytest.mark.integration

VECTORS_DIR = Path(__file__).resolve().parents[1] / "contract"
INSTANCES = json.loads((VECTORS_DIR / "instances.json").read_text())
REQUESTS = json.loads((VECTORS_DIR / "requests.json").read_text())
ERRORS = REQUESTS["errors"]
ACCEPTED = REQUESTS["accepted"]
MODEL_LIMITS = REQUESTS["model_limits"]
UNSPECIFIED = REQUESTS["unspecified"]
ALL_INSTANCES = [
    (f"{group}[{i}]", instance)
    for group, rows in INSTANCES["groups"].items()
    for i, instance in enumerate(rows)
]
PROBABILITY_TOLERANCE = 1e-5  # each service against in-process scikit-learn
AGREEMENT = REQUESTS["limits"]["probability_agreement"]  # the services among themselves
BATCH_CHUNK = 100  # instances per batch request when replaying ALL_INSTANCES
JSON_HEADERS = {"Content-Type": "application/json"}
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
DURATION = "http_server_request_duration_seconds"
EXIT_TIMEOUT_S = 60.0
FASTAPI = {"FRAMEWORK": "fastapi"}
# (service, settings): every service as deployed, and the Python ones with FRAMEWORK=fastapi.
VARIANTS = [
    ("python-api-pkl", {}),
    ("python-api-pkl", FASTAPI),
    ("python-api-onnx", {}),
    ("python-api-onnx", FASTAPI),
    ("go-api-onnx", {}),
]
VARIANT_IDS = [f"{name}-{o['FRAMEWORK']}" if o else name for name, o in VARIANTS]


# --- vectors → bytes ------------------------------------------------------------------------


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def body_bytes(request: dict[str, Any]) -> bytes:
    """The exact bytes a vector's `body` describes (see tests/contract/generate_vectors.py)."""
    body = request.get("body")
    if body is None:
        return b""
    if "json" in body:
        return _compact(body["json"])
    if "text" in body:
        return body["text"].encode()
    if "base64" in body:
        return base64.b64decode(body["base64"])
    if "batch" in body:
        cycle, count = body["batch"]["cycle"], body["batch"]["count"]
        return _compact({"instances": [cycle[i % len(cycle)] for i in range(count)]})
    if "padded" in body:
        text, size = _compact(body["padded"]["json"]), body["padded"]["size"]
        assert text.endswith(b"}") and len(text) <= size
        return text[:-1] + b" " * (size - len(text)) + b"}"
    if "repeat" in body:
        unit, size = body["repeat"]["text"].encode(), body["repeat"]["size"]
        return (unit * (size // len(unit) + 1))[:size]
    raise ValueError(f"unknown body encoding {sorted(body)}")


def send(client: httpx.Client, request: dict[str, Any]) -> httpx.Response:
    content: bytes | Iterator[bytes] | None = body_bytes(request)
    if request["method"] in ("GET", "HEAD", "OPTIONS", "DELETE") and not content:
        content = None
    elif request.get("chunked"):
        raw = content

        def chunks() -> Iterator[bytes]:  # an iterator: httpx sends Transfer-Encoding: chunked
            for start in range(0, len(raw), 8192):
                yield raw[start : start + 8192]

        content = chunks()
    return client.request(
        request["method"], request["path"], headers=request["headers"], content=content
    )


def describe(request: dict[str, Any]) -> str:
    body = body_bytes(request)
    shown = body[:120] + (b"..." if len(body) > 120 else b"")
    return (
        f"{request['method']} {request['path']} headers={request['headers']} "
        f"body({len(body)} B{', chunked' if request.get('chunked') else ''})={shown!r}"
    )


def _reject_constant(token: str) -> None:
    raise ValueError(f"{token} is not RFC 8259 JSON")


def strict_json(response: httpx.Response) -> Any:
    """The body as RFC 8259 JSON: UTF-8, and NaN/Infinity (which Python's json allows) refused."""
    try:
        return json.loads(response.content.decode("utf-8"), parse_constant=_reject_constant)
    except ValueError as error:
        raise AssertionError(
            f"{response.request.method} {response.request.url} → {response.status_code}: the "
            f"body is not RFC 8259 JSON ({error}): {response.text[:300]!r}"
        ) from None


def error_code(response: httpx.Response) -> str | None:
    try:
        return strict_json(response)["error"]["code"]
    except (AssertionError, KeyError, TypeError):
        return None


# --- reference predictions ------------------------------------------------------------------


class Reference:
    """In-process scikit-learn: the answer every service must give."""

    def __init__(self, artifacts_dir: Path) -> None:
        self.manifest = manifest_io.load(artifacts_dir / manifest_io.MANIFEST_NAME)
        self.model = train.load_model(artifacts_dir)
        self.features: list[str] = self.manifest["feature_names"]
        self.labels: list[str] = self.manifest["class_labels"]

    def probabilities(self, instances: list[dict[str, Any]]) -> np.ndarray:
        rows = [
            [np.nan if instance.get(f) is None else float(instance[f]) for f in self.features]
            for instance in instances
        ]
        return self.model.predict_proba(np.array(rows, dtype=np.float64))


def prediction_problem(prediction: Any, expected: np.ndarray, labels: list[str]) -> str | None:
    """What is wrong with one prediction, or None (contract: "A prediction is …")."""
    if not isinstance(prediction, dict) or set(prediction) != {
        "label",
        "class_id",
        "probabilities",
    }:
        return f"keys must be label, class_id, probabilities: {prediction!r}"
    probabilities = prediction["probabilities"]
    if not isinstance(probabilities, dict) or list(probabilities) != labels:
        return f"probabilities must have the manifest labels in order {labels}: {probabilities!r}"
    values = list(probabilities.values())
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return f"probabilities must be numbers: {probabilities!r}"
    if not all(math.isfinite(v) for v in values):
        return f"probabilities must be finite: {probabilities!r}"
    got = np.array(values, dtype=np.float64)
    if np.max(np.abs(got - expected)) > PROBABILITY_TOLERANCE:
        return f"probabilities {values} differ from scikit-learn {expected.tolist()} by > 1e-5"
    class_id = prediction["class_id"]
    if not isinstance(class_id, int) or isinstance(class_id, bool):
        return f"class_id must be an integer: {class_id!r}"
    if class_id != int(np.argmax(got)):
        return f"class_id {class_id} is not the index of the highest probability in {values}"
    if prediction["label"] != labels[class_id]:
        return f"label {prediction['label']!r} is not class_labels[{class_id}]"
    # Labels must equal scikit-learn's, except where its top two are closer than the tolerance
    # the probabilities are allowed (then either of the tied classes is right).
    ranked = np.sort(expected)[::-1]
    tied = np.flatnonzero(expected >= ranked[0] - 2 * PROBABILITY_TOLERANCE)
    if class_id not in tied:
        return f"label {labels[class_id]!r}, scikit-learn says {labels[int(np.argmax(expected))]!r}"
    return None


def predictions_in(response: httpx.Response, path: str) -> list[Any]:
    assert response.status_code == 200, (
        f"expected 200, got {response.status_code}: {response.text[:300]}"
    )
    assert response.headers.get("content-type", "").startswith("application/json")
    body = strict_json(response)
    if path.startswith("/predict/batch"):
        assert isinstance(body, dict) and set(body) == {"predictions"}, f"batch body: {body!r:.300}"
        return body["predictions"]
    return [body]


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def reference(contract_artifacts: Path) -> Reference:
    return Reference(contract_artifacts)


@pytest.fixture(scope="module", params=VARIANTS, ids=VARIANT_IDS)
def service(request: pytest.FixtureRequest, service_pool):
    name, overrides = request.param
    return service_pool.get(name, overrides)


def _all_variants(service_pool) -> list[Any]:
    """Every variant the pool can serve (CONTRACT_TARGETS: the plain services only)."""
    return [
        service_pool.get(name, overrides)
        for name, overrides in VARIANTS
        if not (service_pool.external and overrides)
    ]


@pytest.fixture(scope="module")
def client(service, client_for: Callable[[str], httpx.Client]) -> httpx.Client:
    return client_for(service.base_url)


@pytest.fixture(autouse=True)
def no_server_errors(response_log) -> Iterator[None]:
    """No input in the suite may produce a 5xx (contract: 500 `internal` is never expected)."""
    start = len(response_log.entries)
    yield
    errors = response_log.server_errors_since(start)
    assert not errors, "5xx responses:\n" + "\n".join(
        f"  {method} {url} → {status} {body}" for method, url, status, body in errors
    )


@pytest.fixture
def owned_processes(service_pool) -> None:
    if service_pool.external:
        pytest.skip("CONTRACT_TARGETS is set: the suite does not own these processes")


# --- the vectors themselves -----------------------------------------------------------------


def _generator():
    spec = importlib.util.spec_from_file_location(
        "generate_vectors", VECTORS_DIR / "generate_vectors.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vector_files_are_what_the_generator_writes(reference: Reference) -> None:
    generator = _generator()
    instances = generator.build_instances(reference.manifest["feature_ranges"])
    assert generator.render(instances) == (VECTORS_DIR / "instances.json").read_text(), (
        "tests/contract/instances.json is stale: run .venv/bin/python "
        "tests/contract/generate_vectors.py"
    )
    assert (
        generator.render(generator.build_requests()) == (VECTORS_DIR / "requests.json").read_text()
    ), "tests/contract/requests.json is stale: run the generator"


def test_vectors_cover_the_contract(reference: Reference) -> None:
    assert INSTANCES["feature_names"] == reference.features
    assert len(ALL_INSTANCES) >= 300
    missing_patterns = {
        frozenset(f for f in reference.features if instance.get(f) is None)
        for _, instance in ALL_INSTANCES
    }
    assert len(missing_patterns) == 16, "every subset of missing features is exercised"
    assert {vector["row"] for vector in ERRORS} == set(range(1, 11))
    ranges = reference.manifest["feature_ranges"]
    for instance in INSTANCES["groups"]["random"]:
        for feature, value in instance.items():
            if value is not None:
                assert ranges[feature]["min"] <= value <= ranges[feature]["max"]


# --- per service ----------------------------------------------------------------------------


def test_healthz(client: httpx.Client, service, reference: Reference, request) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers.get("content-type", "").startswith("application/json")
    body = strict_json(response)
    assert set(body) == {"status", "model_sha256", "runtime", "framework", "startup"}, body
    assert body["status"] == "ok"
    model_file = all_services()[service.name].model_file
    assert body["model_sha256"] == reference.manifest["artifacts"][model_file]["sha256"]
    assert isinstance(body["runtime"], str) and body["runtime"].strip()
    name, overrides = request.node.callspec.params["service"]
    framework = "chi" if name == "go-api-onnx" else overrides.get("FRAMEWORK", "lean")
    assert body["framework"] == framework, body
    startup = body["startup"]
    steps = ["imports_done_unix", "model_loaded_unix", "listening_unix"]
    assert list(startup) == steps, startup
    times = [startup[step] for step in steps]
    assert all(isinstance(t, float) for t in times), startup
    # Wall-clock seconds of this process's start-up, in order, and not in the future.
    assert times == sorted(times) and time.time() - 3600 < times[0] <= times[2] <= time.time()


def test_single_predictions_equal_sklearn(client: httpx.Client, reference: Reference) -> None:
    expected = reference.probabilities([instance for _, instance in ALL_INSTANCES])
    problems = []
    for (where, instance), want in zip(ALL_INSTANCES, expected, strict=True):
        response = client.post("/predict", content=_compact(instance), headers=JSON_HEADERS)
        if response.status_code != 200:
            problems.append(
                f"{where} {instance}: HTTP {response.status_code} {response.text[:200]}"
            )
            continue
        problem = prediction_problem(strict_json(response), want, reference.labels)
        if problem:
            problems.append(f"{where} {instance}: {problem}")
    assert not problems, f"{len(problems)} of {len(ALL_INSTANCES)} wrong:\n" + "\n".join(
        problems[:20]
    )


def test_batch_predictions_equal_sklearn_in_order(
    client: httpx.Client, reference: Reference
) -> None:
    # Reversed, so the order of a batch differs from the order of the single requests.
    ordered = ALL_INSTANCES[::-1]
    expected = reference.probabilities([instance for _, instance in ordered])
    problems = []
    for start in range(0, len(ordered), BATCH_CHUNK):
        chunk = ordered[start : start + BATCH_CHUNK]
        body = {"instances": [instance for _, instance in chunk]}
        response = client.post("/predict/batch", content=_compact(body), headers=JSON_HEADERS)
        predictions = predictions_in(response, "/predict/batch")
        assert len(predictions) == len(chunk)
        for offset, ((where, instance), prediction) in enumerate(
            zip(chunk, predictions, strict=True)
        ):
            problem = prediction_problem(prediction, expected[start + offset], reference.labels)
            if problem:
                problems.append(f"item {offset} of batch at {start}, {where} {instance}: {problem}")
    assert not problems, "\n".join(problems[:20])


def assert_matches_sklearn(response: httpx.Response, request: dict, reference: Reference) -> None:
    """Every prediction in a 200 equals the in-process pipeline's for the instance sent."""
    sent = json.loads(body_bytes(request))
    instances = sent["instances"] if request["path"].startswith("/predict/batch") else [sent]
    predictions = predictions_in(response, request["path"])
    assert len(predictions) == len(instances)
    expected = reference.probabilities(instances)
    problems = [
        f"item {i}: {problem}"
        for i, (prediction, want) in enumerate(zip(predictions, expected, strict=True))
        if (problem := prediction_problem(prediction, want, reference.labels))
    ]
    assert not problems, f"{describe(request)}\n" + "\n".join(problems[:10])


@pytest.mark.parametrize("vector", ACCEPTED, ids=[v["id"] for v in ACCEPTED])
def test_accepted_request(client: httpx.Client, reference: Reference, vector: dict) -> None:
    request = vector["request"]
    response = send(client, request)
    assert response.status_code == 200, (
        f"{describe(request)}\nexpected 200 ({vector['about']}), got {response.status_code}: "
        f"{response.text[:300]}"
    )
    assert_matches_sklearn(response, request, reference)


@pytest.mark.parametrize("vector", MODEL_LIMITS, ids=[v["id"] for v in MODEL_LIMITS])
def test_model_limit_request(client: httpx.Client, reference: Reference, vector: dict) -> None:
    """Row 11: an instance the model cannot score is a 422, never NaN; else sklearn's answer."""
    request = vector["request"]
    response = send(client, request)
    if response.status_code == 422:
        check_error_response(
            response, {**vector, "row": 11, "expect": {**vector["expect"], "status": 422}}
        )
        return
    assert response.status_code == 200, (
        f"{describe(request)}\nexpected 200 or 422, got {response.status_code}"
    )
    assert_matches_sklearn(response, request, reference)


def check_error_response(response: httpx.Response, vector: dict[str, Any]) -> None:
    expect, request = vector["expect"], vector["request"]
    context = f"{vector['id']} (row {vector['row']}: {vector['about']})\n{describe(request)}\n"
    got = (
        f"got {response.status_code} {response.headers.get('content-type')} {response.text[:300]!r}"
    )
    assert response.status_code == expect["status"], f"{context}expected {expect['status']}, {got}"
    assert response.headers.get("content-type", "").startswith("application/json"), context + got
    body = strict_json(response)
    assert isinstance(body, dict) and set(body) == {"error"}, context + got
    error = body["error"]
    keys = {"code", "message"} | ({"field"} if expect["field"] is not None else set())
    assert isinstance(error, dict) and set(error) == keys, f"{context}keys must be {keys}, {got}"
    assert error["code"] == expect["code"], f"{context}expected code {expect['code']}, {got}"
    assert isinstance(error["message"], str) and error["message"].strip(), context + got
    if expect["field"] is not None:  # a list: several mistakes, any of them may be named
        fields = expect["field"] if isinstance(expect["field"], list) else [expect["field"]]
        assert error["field"] in fields, f"{context}expected field in {fields!r}, {got}"
    if "allow" in expect:
        allowed = {m.strip().upper() for m in response.headers.get("allow", "").split(",")}
        assert expect["allow"] in allowed, f"{context}Allow must list {expect['allow']}, {got}"
        assert request["method"] not in allowed, f"{context}Allow lists the refused method"


@pytest.mark.parametrize("vector", ERRORS, ids=[v["id"] for v in ERRORS])
def test_error_request(client: httpx.Client, vector: dict) -> None:
    check_error_response(send(client, vector["request"]), vector)


def _duration_samples(metrics_url: str) -> list[Any]:
    text = httpx.get(metrics_url, timeout=10).text
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith(DURATION)
    ], text


def test_metrics_record_routes_not_healthz(client: httpx.Client, service) -> None:
    if not service.metrics_url:
        pytest.skip("no scrape endpoint known for this target (set CONTRACT_METRICS_TARGETS)")
    assert client.post("/predict", json=SETOSA).status_code == 200
    assert client.post("/predict/batch", json={"instances": [SETOSA, {}]}).status_code == 200
    assert client.post("/predict", json={"typo": 1}).status_code == 422
    assert client.get("/healthz").status_code == 200
    wanted = {
        ("POST", "/predict", "200"),
        ("POST", "/predict/batch", "200"),
        ("POST", "/predict", "422"),
    }

    def seen() -> set[tuple[str, str, str]]:
        samples, _ = _duration_samples(service.metrics_url)
        return {
            (
                s.labels.get("http_request_method"),
                s.labels.get("http_route"),
                s.labels.get("http_response_status_code"),
            )
            for s in samples
            if s.name == f"{DURATION}_bucket"
        }

    # The histogram is recorded as the response completes, a moment after the client has it.
    found = wait_for(lambda: wanted <= seen() and seen())
    samples, text = _duration_samples(service.metrics_url)
    assert found, (
        f"{service.metrics_url}: expected {DURATION}_bucket series {sorted(wanted)}, "
        f"found {sorted(seen())}\n{text[:2000]}"
    )
    assert any(s.name == f"{DURATION}_count" for s in samples)
    assert any(s.name == f"{DURATION}_sum" for s in samples)
    healthz = [s for s in samples if any("healthz" in str(v) for v in s.labels.values())]
    assert not healthz, f"/healthz must not be recorded: {healthz[:3]}"
    boundaries = {
        float(s.labels["le"])
        for s in samples
        if s.name == f"{DURATION}_bucket" and s.labels.get("http_route") == "/predict"
    }
    wanted_boundaries = {*REQUESTS["limits"]["latency_buckets_s"], math.inf}
    assert boundaries == wanted_boundaries, (
        f"bucket boundaries must be CONTRACT.md's: missing {sorted(wanted_boundaries - boundaries)}"
        f", extra {sorted(boundaries - wanted_boundaries)}"
    )


def test_metrics_carry_service_name(client: httpx.Client, service) -> None:
    if not service.metrics_url:
        pytest.skip("no scrape endpoint known for this target (set CONTRACT_METRICS_TARGETS)")
    assert client.post("/predict", json=SETOSA).status_code == 200
    text = httpx.get(service.metrics_url, timeout=10).text
    names = {
        sample.labels.get(label)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "target_info" or sample.name.startswith(DURATION)
        for label in ("service_name", "job")
    }
    assert service.name in names, (
        f"service.name {service.name!r} appears neither as target_info{{service_name}} nor as "
        f"job: {sorted(n for n in names if n)}"
    )


def test_service_survived_the_suite(service) -> None:
    """Runs last for its service: no request above crashed or restarted the process."""
    if service.managed is None:
        pytest.skip("CONTRACT_TARGETS is set: the suite does not own this process")
    assert service.managed.alive(), (
        f"{service.name} exited with status {service.managed.popen.returncode} during the "
        f"suite; log {service.log_path}:\n{service.managed.log_tail(30)}"
    )


# --- across services ------------------------------------------------------------------------


def test_error_codes_identical_across_services(
    service_pool, client_for: Callable[[str], httpx.Client]
) -> None:
    """Every error vector, and every request the contract leaves open: the same status and
    code from all three (fields are held to each vector per service, above)."""
    services = _all_variants(service_pool)
    clients = [client_for(s.base_url) for s in services]
    differences = []
    for vector in ERRORS + UNSPECIFIED:
        outcomes = {
            s.variant: (r.status_code, error_code(r))
            for s, c in zip(services, clients, strict=True)
            for r in [send(c, vector["request"])]
        }
        if len(set(outcomes.values())) > 1:
            differences.append(f"{vector['id']}: {outcomes}  ({describe(vector['request'])})")
    assert not differences, "services answer differently:\n" + "\n".join(differences)


def _probabilities(response: httpx.Response, path: str) -> list[list[float]]:
    return [list(p["probabilities"].values()) for p in predictions_in(response, path)]


def test_probabilities_agree_across_services(
    service_pool, client_for: Callable[[str], httpx.Client]
) -> None:
    """Probabilities are compared as numbers, never as text: within 1e-6 of each other."""
    services = _all_variants(service_pool)
    clients = [client_for(s.base_url) for s in services]
    instances = [instance for _, instance in ALL_INSTANCES]
    requests = [
        {
            "id": f"instances[{start}:]",
            "request": {
                "method": "POST",
                "path": "/predict/batch",
                "headers": JSON_HEADERS,
                "body": {"json": {"instances": instances[start : start + BATCH_CHUNK]}},
            },
        }
        for start in range(0, len(instances), BATCH_CHUNK)
    ] + ACCEPTED
    problems = []
    for vector in requests:
        path = vector["request"]["path"]
        answers = [np.array(_probabilities(send(c, vector["request"]), path)) for c in clients]
        for service, answer in zip(services[1:], answers[1:], strict=True):
            difference = float(np.max(np.abs(answer - answers[0])))
            if difference > AGREEMENT:
                problems.append(
                    f"{vector['id']}: {service.variant} differs from {services[0].variant} by "
                    f"{difference:.3g}"
                )
    assert not problems, "\n".join(problems[:20])


# --- process lifecycle (only when the suite owns the processes) ------------------------------


def _run_until_exit(name: str, artifacts_dir: Path, tmp_path: Path, **overrides: str):
    """Start the service with bad configuration; return (exit status, stderr).

    stderr is captured on its own (the contract wants the reason there). If the service comes
    up and answers /healthz instead of exiting, the test fails at once.
    """
    spec = all_services()[name]
    if not Path(spec.argv[0]).exists():
        pytest.fail(f"{spec.argv[0]} does not exist: run `make setup`", pytrace=False)
    port = free_port()
    env = spec.environment(artifacts_dir, port, metrics_port=None, overrides=overrides)
    stderr_path = tmp_path / f"{name}.stderr"
    with stderr_path.open("wb") as stderr:
        popen = subprocess.Popen(
            list(spec.argv),
            cwd=spec.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:

        def exited_or_serving() -> bool:
            if popen.poll() is not None:
                return True
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
            except httpx.HTTPError:
                return False
            return True

        wait_for(exited_or_serving, timeout_s=EXIT_TIMEOUT_S)
        assert popen.poll() is not None, (
            f"{name} is still running (it may be serving) with {overrides or 'a bad model'}; "
            f"stderr: {stderr_path.read_text(errors='replace')[-1000:]}"
        )
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait()
    return popen.returncode, stderr_path.read_text(errors="replace")


def _copy_artifacts(contract_artifacts: Path, tmp_path: Path) -> Path:
    directory = tmp_path / "artifacts"
    shutil.copytree(contract_artifacts, directory)
    return directory


@pytest.mark.parametrize("name", SERVICE_NAMES)
@pytest.mark.usefixtures("owned_processes")
def test_tampered_model_exits_2(name: str, contract_artifacts: Path, tmp_path: Path) -> None:
    directory = _copy_artifacts(contract_artifacts, tmp_path)
    model = directory / all_services()[name].model_file
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    status, stderr = _run_until_exit(name, directory, tmp_path)
    assert status == 2, f"exit status {status}, stderr: {stderr[-1000:]}"
    assert model.name in stderr, f"stderr must name {model.name}: {stderr[-1000:]}"


@pytest.mark.parametrize("name", SERVICE_NAMES)
@pytest.mark.usefixtures("owned_processes")
def test_missing_manifest_exits_2(name: str, contract_artifacts: Path, tmp_path: Path) -> None:
    absent = tmp_path / "absent-manifest.json"
    status, stderr = _run_until_exit(name, contract_artifacts, tmp_path, MODEL_MANIFEST=str(absent))
    assert status == 2, f"exit status {status}, stderr: {stderr[-1000:]}"
    assert absent.name in stderr, f"stderr must name {absent}: {stderr[-1000:]}"


@pytest.mark.parametrize("name", SERVICE_NAMES)
@pytest.mark.usefixtures("owned_processes")
def test_missing_model_exits_2(name: str, contract_artifacts: Path, tmp_path: Path) -> None:
    directory = _copy_artifacts(contract_artifacts, tmp_path)
    model = directory / all_services()[name].model_file
    model.unlink()
    status, stderr = _run_until_exit(name, directory, tmp_path)
    assert status == 2, f"exit status {status}, stderr: {stderr[-1000:]}"
    assert model.name in stderr, f"stderr must name {model.name}: {stderr[-1000:]}"


@pytest.mark.parametrize("name", SERVICE_NAMES)
@pytest.mark.usefixtures("owned_processes")
def test_model_not_in_manifest_exits_2(name: str, contract_artifacts: Path, tmp_path: Path) -> None:
    directory = _copy_artifacts(contract_artifacts, tmp_path)
    model = directory / all_services()[name].model_file
    unlisted = model.with_name(f"unlisted{model.suffix}")
    model.rename(unlisted)
    status, stderr = _run_until_exit(name, directory, tmp_path, MODEL_PATH=str(unlisted))
    assert status == 2, f"exit status {status}, stderr: {stderr[-1000:]}"
    assert unlisted.name in stderr, f"stderr must name {unlisted.name}: {stderr[-1000:]}"


@pytest.mark.parametrize("name", SERVICE_NAMES)
@pytest.mark.usefixtures("owned_processes")
def test_invalid_port_exits_2(name: str, contract_artifacts: Path, tmp_path: Path) -> None:
    status, stderr = _run_until_exit(name, contract_artifacts, tmp_path, PORT="abc")
    assert status == 2, f"exit status {status}, stderr: {stderr[-1000:]}"
    assert "PORT" in stderr, f"stderr must name the setting PORT: {stderr[-1000:]}"


def _port_open(url: str) -> bool:
    host, port = httpx.URL(url).host, httpx.URL(url).port
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("name", SERVICE_NAMES)
@pytest.mark.usefixtures("owned_processes")
def test_sigterm_exits_0_and_closes_ports(
    name: str, launch_service, client_for: Callable[[str], httpx.Client]
) -> None:
    service = launch_service(name)
    try:
        assert client_for(service.base_url).post("/predict", json=SETOSA).status_code == 200
        assert service.metrics_url and _port_open(service.metrics_url)
    finally:
        status = service.stop(grace_s=15.0)  # SIGTERM; SIGKILL only after 15 s
    log = service.managed.log_tail(20)
    assert status == 0, f"{name} exited with {status} after SIGTERM; log:\n{log}"
    assert not _port_open(service.base_url), f"{service.base_url} still accepts connections"
    assert not _port_open(service.metrics_url), f"{service.metrics_url} still accepts connections"


def wait_for(predicate: Callable[[], Any], timeout_s: float = 10.0, poll_s: float = 0.05) -> Any:
    """Poll `predicate()` until it returns something truthy (returned) or time runs out.

    For effects observable only a moment after a response (a histogram is recorded as the
    response completes; a process exits): observe, never assume a delay.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(poll_s)
