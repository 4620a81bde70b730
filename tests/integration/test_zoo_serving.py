"""Every zoo model served by the real services from its own artifacts folder, unchanged.

The zoo is built at smoke size (helpers.zoo.classifiers) next to the session's seed model; each
(model, service) pair starts the service on that folder and replays the contract's success
rows (tests/contract/instances.json: iris, missing, random — the edge group probes float32
limits, contract row 11, which legitimately differ per model) as one batch plus one single
request; expected probabilities come from the model's own pickle in this process.

A model without an ONNX file (skl2onnx cannot convert it) must make the ONNX services exit 2
naming the file. Every other (model, service) pair must serve — float64 inputs included.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from helpers.model import manifest as manifest_io
from helpers.model import train
from helpers.net import free_port
from helpers.serving.services import SERVICE_NAMES, all_services
from helpers.zoo import classifiers

pytestmark = pytest.mark.integration

INSTANCES = json.loads(
    (Path(__file__).resolve().parents[1] / "contract" / "instances.json").read_text()
)
SUCCESS_ROWS = [
    row for group in ("iris", "missing", "random") for row in INSTANCES["groups"][group]
]
TOLERANCE = 1e-5  # services/CONTRACT.md: each service against in-process scikit-learn
EXIT_TIMEOUT_S = 60.0


@pytest.fixture(scope="session")
def zoo_dirs(model_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    seed_dir = tmp_path_factory.mktemp("zoo-serving")
    (seed_dir / manifest_io.MANIFEST_NAME).write_bytes(
        (model_artifacts / manifest_io.MANIFEST_NAME).read_bytes()
    )
    built = classifiers.build_all(list(classifiers.KNOWN), seed_dir, profile="smoke", n_random=200)
    return {zm.spec.name: zm.artifacts_dir for zm in built}


def expected_probabilities(model_dir: Path, instances: list[dict[str, Any]]) -> np.ndarray:
    recorded = manifest_io.load(model_dir / manifest_io.MANIFEST_NAME)
    rows = [
        [np.nan if row.get(f) is None else float(row[f]) for f in recorded["feature_names"]]
        for row in instances
    ]
    return train.load_model(model_dir).predict_proba(np.array(rows, dtype=np.float64))


def problems_in(predictions: list[Any], expected: np.ndarray, labels: list[str]) -> list[str]:
    problems = []
    for i, (prediction, want) in enumerate(zip(predictions, expected, strict=True)):
        probabilities = prediction["probabilities"]
        if list(probabilities) != labels:
            problems.append(f"{i}: labels {list(probabilities)} != {labels}")
            continue
        got = np.array(list(probabilities.values()), dtype=np.float64)
        if not all(math.isfinite(v) for v in got) or np.max(np.abs(got - want)) > TOLERANCE:
            problems.append(f"{i}: {got.tolist()} vs scikit-learn {want.tolist()}")
        elif prediction["class_id"] != int(np.argmax(got)):
            problems.append(f"{i}: class_id {prediction['class_id']} is not the argmax of {got}")
        elif prediction["label"] != labels[prediction["class_id"]]:
            problems.append(f"{i}: label {prediction['label']} for class {prediction['class_id']}")
    return problems


def start_up_failure(
    service: str, model_dir: Path, timeout_s: float = EXIT_TIMEOUT_S
) -> subprocess.CompletedProcess | None:
    """Run the service on the folder expecting it to exit on its own; None if it kept running
    (it served the model) until `timeout_s`."""
    spec = all_services()[service]
    env = spec.environment(model_dir, free_port(), None)
    try:
        return subprocess.run(
            list(spec.argv), env=env, cwd=spec.cwd, capture_output=True, text=True,
            timeout=timeout_s,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None


@pytest.mark.parametrize("service", SERVICE_NAMES)
@pytest.mark.parametrize("name", list(classifiers.KNOWN))
def test_zoo_model_is_served_through_the_contract(
    name: str, service: str, zoo_dirs: dict[str, Path], launch_service
) -> None:
    model_dir = zoo_dirs[name]
    recorded = manifest_io.load(model_dir / manifest_io.MANIFEST_NAME)
    model_file = all_services()[service].model_file
    if model_file not in recorded["artifacts"]:
        # No ONNX graph for this model: the contract says exit 2 with the file named.
        done = start_up_failure(service, model_dir)
        assert done.returncode == 2, done.stderr
        assert model_file in done.stderr, done.stderr
        return
    running = launch_service(service, artifacts_dir=model_dir, metrics=False)
    try:
        with httpx.Client(base_url=running.base_url, timeout=60) as client:
            health = client.get("/healthz").json()
            assert health["model_sha256"] == recorded["artifacts"][model_file]["sha256"]
            batch = client.post("/predict/batch", json={"instances": SUCCESS_ROWS})
            assert batch.status_code == 200, batch.text[:300]
            single = client.post("/predict", json=SUCCESS_ROWS[0])
            assert single.status_code == 200, single.text[:300]
        labels = recorded["class_labels"]
        expected = expected_probabilities(model_dir, SUCCESS_ROWS)
        problems = problems_in(batch.json()["predictions"], expected, labels)
        problems += problems_in([single.json()], expected[:1], labels)
        assert not problems, f"{service} on {name}: {len(problems)} wrong\n" + "\n".join(
            problems[:10]
        )
    finally:
        running.stop()
