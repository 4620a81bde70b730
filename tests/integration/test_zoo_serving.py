"""Every zoo model served by the real services that can load it, on the one stack notebook 09
starts (helpers.zoo.serving): each (model, service) pair an instance serving the model's own
folder unchanged, beside each service serving the seed's model, under the real limits.

The zoo is built at smoke size (helpers.zoo.classifiers) next to the session's seed model.
Each instance replays the contract's success rows (tests/contract/instances.json: iris,
missing, random — the edge group probes float32 limits, contract row 11, which legitimately
differ per model) as one batch plus one single request; expected probabilities come from the
model's own pickle in this process.

A pair the plan leaves out (no ONNX graph: skl2onnx cannot convert the model) is a row saying
so; forced into the stack anyway, that instance exits at start (status 2, the file named) and
the stack starts again without it. One round of the zoo's paired comparison and one cold start
run for real on the stack, bounded: a second or so of load per instance.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from helpers import net
from helpers.load import capacity
from helpers.model import manifest as manifest_io
from helpers.model import train
from helpers.serving.instances import SERVICE_NAMES, Instance
from helpers.serving.protocol import feature_ranges
from helpers.serving.services import all_services
from helpers.sizing import Windows, ZooSize
from helpers.zoo import classifiers, heaviest, report, serving

pytestmark = pytest.mark.integration

INSTANCES = json.loads(
    (Path(__file__).resolve().parents[1] / "contract" / "instances.json").read_text()
)
SUCCESS_ROWS = [
    row for group in ("iris", "missing", "random") for row in INSTANCES["groups"][group]
]
TOLERANCE = 1e-5  # services/CONTRACT.md: each service against in-process scikit-learn
UNLOADABLE = "label_spreading"  # skl2onnx has no converter: no model.onnx in its folder
ONE_ROUND = ZooSize(10, 1, Windows(0.4, 2, 1, 1, 0.1), 10, 60, 10, 0.5, 1)


def _free_ports() -> dict[str, int]:
    chosen: dict[str, int] = {}
    for key in (*SERVICE_NAMES, "prometheus"):
        port = net.free_port()
        while port in chosen.values():
            port = net.free_port()
        chosen[key] = port
    return chosen


@pytest.fixture(scope="module")
def plan(model_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    seed_dir = tmp_path_factory.mktemp("zoo-serving")
    (seed_dir / manifest_io.MANIFEST_NAME).write_bytes(
        (model_artifacts / manifest_io.MANIFEST_NAME).read_bytes()
    )
    built = classifiers.build_all(list(classifiers.KNOWN), seed_dir, profile="smoke", n_random=200)
    return report.serving_plan(built)


@pytest.fixture(scope="module")
def zoo_stack(
    plan: dict[str, Any], model_artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, list[dict[str, str]]]]:
    """The zoo's stack, with one instance forced in that cannot load its model."""
    forced = Instance(
        serving.instance_name("python-api-onnx", UNLOADABLE),
        "python-api-onnx",
        environment=dict(serving.TELEMETRY_OFF),
        artifacts_dir=plan[UNLOADABLE][0],
    )
    wanted = [*serving.instances(plan), forced]
    run_dir = tmp_path_factory.mktemp("zoo-stack")
    stack, dropped = serving.start("local", run_dir, model_artifacts, wanted, ports=_free_ports())
    try:
        yield stack, dropped
    finally:
        stack.stop()


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


def test_an_instance_that_cannot_load_its_model_is_left_out_with_why(
    plan: dict[str, Any], zoo_stack: tuple[Any, list[dict[str, str]]]
) -> None:
    stack, dropped = zoo_stack
    forced = serving.instance_name("python-api-onnx", UNLOADABLE)
    assert [row["instance"] for row in dropped] == [forced]
    assert "exited with status 2" in dropped[0]["reason"], dropped
    assert "model.onnx" in dropped[0]["reason"], dropped
    assert dropped[0]["stage"] == serving.NOT_STARTED
    assert set(stack.instances) == {i.name for i in serving.instances(plan)}
    assert not stack.failures()


@pytest.mark.parametrize("service", SERVICE_NAMES)
@pytest.mark.parametrize("name", list(classifiers.KNOWN))
def test_zoo_model_is_served_through_the_contract(
    name: str, service: str, plan: dict[str, Any], zoo_stack: tuple[Any, list[dict[str, str]]]
) -> None:
    stack, _ = zoo_stack
    model_dir, fitting = plan[name]
    recorded = manifest_io.load(model_dir / manifest_io.MANIFEST_NAME)
    model_file = all_services()[service].model_file
    instance = serving.instance_name(service, name)
    if service not in fitting:  # no file for this service: a row saying why, not an instance
        assert model_file not in recorded["artifacts"]
        assert instance in {row["instance"] for row in serving.unservable(plan)}
        assert instance not in stack.instances
        return
    with httpx.Client(base_url=stack.service_urls[instance], timeout=60) as client:
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
    assert not problems, f"{service} on {name}: {len(problems)} wrong\n" + "\n".join(problems[:10])


def test_one_round_of_the_paired_comparison_and_a_cold_start_on_the_zoo_stack(
    plan: dict[str, Any], zoo_stack: tuple[Any, list[dict[str, str]]], tmp_path: Path
) -> None:
    stack, _ = zoo_stack
    ranges = feature_ranges(stack.run_dir)
    target_of = capacity.targets(stack, ranges, tmp_path / "targets")
    go = [c for c in serving.comparisons(stack.instances, 10) if c.name == "go-api-onnx"]
    serving.measure(stack, go, ONE_ROUND, target_of, tmp_path, print)
    (comparison,) = go
    assert len(comparison.complete_rounds()) == 1
    assert {a.label for a in comparison.arms} == {serving.REFERENCE} | {
        model for model, (_, fitting) in plan.items() if "go-api-onnx" in fitting
    }
    for arm in comparison.arms:
        window = comparison.rounds[0][arm.label]
        assert window.ok == window.requests > 0, window
        assert comparison.cpu_us_per_request(arm.label).value > 0
    forest = serving.instance_name("go-api-onnx", "random_forest")
    cold = heaviest.cold_start(stack, [forest], 1, ranges, print)
    assert set(cold) == {forest, "go-api-onnx"}  # the model beside the seed's, same service
    assert all(c["attempts"] == 1 and c["total_s"]["value"] > 0 for c in cold.values())
    health = httpx.get(f"{stack.service_urls[forest]}/healthz", timeout=10).json()
    sha = manifest_io.load(plan["random_forest"][0] / manifest_io.MANIFEST_NAME)
    assert health["model_sha256"] == sha["artifacts"]["model.onnx"]["sha256"]  # its own folder
