"""The post's published configuration still answers the contract (services/CONTRACT.md).

One real local stack with every factor of helpers.load.ablation at its published value —
plain uvicorn (asyncio + h11) with an access log, spans and metrics pushed to the real
OpenTelemetry Collector every 3 s, the ZipMap model with ONNX Runtime's default threads and
spinning, GOMAXPROCS at the host's count — must give the in-process pickle's answers for the
contract's instances, alone and in a batch, and its latency histogram must reach Prometheus
through the collector. The Python services must also say they run with every published value
(a factor a service does not honour would be measured wrong otherwise).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from helpers import net
from helpers.load import ablation, factors
from helpers.model import manifest as manifest_io
from helpers.model import train
from helpers.prometheus import client, queries
from helpers.serving.services import SERVICE_NAMES
from helpers.serving.stack import start_stack

pytestmark = pytest.mark.integration

INSTANCES = json.loads(
    (Path(__file__).resolve().parents[1] / "contract" / "instances.json").read_text()
)
SUBSET = [i for group in ("iris", "missing", "edge") for i in INSTANCES["groups"][group]]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def published(model_artifacts: Path, tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("published")
    env = {
        service: factors.environment(service, factors.Config("published"), model_artifacts)[0]
        for service in SERVICE_NAMES
    }
    ports = {name: net.free_port() for name in (*SERVICE_NAMES, "prometheus")}
    with start_stack(
        "local",
        run_dir=run_dir,
        artifacts_dir=model_artifacts,
        ports=ports,
        service_env=env,
        telemetry="collector",
    ) as stack:
        yield stack


def expected(artifacts_dir: Path, instances: list[dict]) -> tuple[np.ndarray, list[str]]:
    labels = manifest_io.load(artifacts_dir / manifest_io.MANIFEST_NAME)["class_labels"]
    features = INSTANCES["feature_names"]
    rows = [[np.nan if x.get(f) is None else float(x[f]) for f in features] for x in instances]
    return train.load_model(artifacts_dir).predict_proba(np.array(rows)), labels


def problems_in(predictions: list[dict], want: np.ndarray, labels: list[str]) -> list[str]:
    found = []
    for index, (prediction, probabilities) in enumerate(zip(predictions, want, strict=True)):
        got = np.array([prediction["probabilities"][label] for label in labels])
        if np.max(np.abs(got - probabilities)) > TOLERANCE:
            found.append(f"{index}: {got.tolist()} vs scikit-learn {probabilities.tolist()}")
        if prediction["label"] != labels[prediction["class_id"]]:
            found.append(
                f"{index}: label {prediction['label']} is not class {prediction['class_id']}"
            )
    return found


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_the_published_configuration_answers_like_the_pickle(published, service, model_artifacts):
    want, labels = expected(model_artifacts, SUBSET)
    with httpx.Client(base_url=published.service_urls[service], timeout=10) as client:
        single = []
        for instance in SUBSET:
            response = client.post("/predict", json=instance)
            assert response.status_code == 200, (instance, response.text)
            single.append(response.json())
        batch = client.post("/predict/batch", json={"instances": SUBSET[:200]})
        assert batch.status_code == 200, batch.text
    assert not problems_in(single, want, labels)
    assert not problems_in(batch.json()["predictions"], want[:200], labels)


def test_the_python_services_say_they_run_the_published_values(published):
    for service in ("python-api-pkl", "python-api-onnx"):
        log = Path(published.run_dir) / "stack" / "logs" / f"{service}.log"
        started = factors.Started.read(service, log, published.service_urls[service])
        found = ablation.check_values(started, factors.Config("published"), factors.FACTORS)
        assert found and all(reason is None for reason in found.values()), (service, found)


def test_the_go_service_reports_what_it_runs(published):
    """The values it honours are checked; the ones it does not are listed, never assumed."""
    log = Path(published.run_dir) / "stack" / "logs" / "go-api-onnx.log"
    started = factors.Started.read("go-api-onnx", log, published.service_urls["go-api-onnx"])
    found = ablation.check_values(started, factors.Config("published"), factors.FACTORS)
    assert set(found) == {
        "access_log", "traces", "telemetry", "zipmap", "ort_threads", "ort_spinning", "gomaxprocs"
    }  # fmt: skip
    for honoured in ("telemetry", "zipmap", "ort_threads", "ort_spinning", "gomaxprocs"):
        assert found[honoured] is None, (honoured, found[honoured])


def test_the_histogram_reaches_prometheus_through_the_collector(published):
    for service in SERVICE_NAMES:
        httpx.post(f"{published.service_urls[service]}/predict", json=SUBSET[0], timeout=10)
    promql = queries.render(
        "server_requests_total", table="counters", services=queries.services_regex(SERVICE_NAMES)
    )

    def counted():
        found = client.query_instant(published.prometheus_url, promql, time.time())
        return found if set(SERVICE_NAMES) <= {s for s, v in found.items() if v > 0} else None

    net.poll(counted, 20.0, "every service's histogram in Prometheus via the collector", 0.5)
