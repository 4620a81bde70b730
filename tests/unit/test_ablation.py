"""The ablation's plan, environments and checks (helpers.load.ablation), without a stack.

The plan must measure every flip exactly once, never two configurations of one service in one
stack, never a factor on a service it does not apply to; what a service says at start (its log
lines and /healthz, given here as text) decides whether a factor is measured for it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from helpers import sizing
from helpers.load import ablation, ablation_plan, factors
from helpers.load.factors import Config, Started
from helpers.serving.services import SERVICE_NAMES

ARTIFACTS = Path("/artifacts")
PYTHON_LOG = (
    "INFO:     python-api-onnx: /a/model_zipmap.onnx sha256 ab, runtime onnxruntime 1.31.1 "
    "(intra_op_threads=0, spinning=1, input float32, probabilities zipmap output_probability), "
    "metrics otlp, traces otlp, predict stage full, asyncio + h11, access log on\n"
)
GO_LOG = (
    '{"msg":"starting","gomaxprocs":2,"num_cpu":8,"intra_op_threads":1,"allow_spinning":false}\n'
    '{"msg":"listening","metrics_exporter":"prometheus"}\n'
)


def started(text: str, lines_per_request: float = 0.0, service: str = "svc") -> Started:
    record = Started(service, text, probe_log_lines=lambda: lines_per_request)
    record.gomaxprocs = factors.gomaxprocs_from_log(text)
    return record


def all_flips(ends=factors.ENDS, extras=True, factors=factors.FACTORS):
    return ablation_plan.flips(SERVICE_NAMES, ends, extras, factors)


def test_the_plan_measures_every_flip_once_and_never_two_configs_of_a_service_together():
    stacks = ablation_plan.plan(SERVICE_NAMES, artifacts_dir=ARTIFACTS)
    seen = Counter()
    for stack in stacks:
        for service, config in stack.members.items():
            seen[(service, config)] += 1
            telemetry = factors.environment(service, config, ARTIFACTS)[1]
            assert telemetry == stack.telemetry, (stack.name, service, config)
    wanted = Counter(all_flips()) + Counter(
        (s, Config(e)) for s in SERVICE_NAMES for e in factors.ENDS
    )
    assert seen == wanted
    assert [s.name for s in stacks[:2]] == ["tuned", "published"]
    assert stacks[0].telemetry == "pull" and stacks[1].telemetry == "collector"
    # Packing: no more stacks than the busiest service needs per telemetry path.
    per_path = Counter(
        (factors.environment(s, c, ARTIFACTS)[1], s) for s, c in all_flips()
    )  # fmt: skip
    needed = {path: max(n for (p, _), n in per_path.items() if p == path) for path, _ in per_path}
    assert len(stacks) == 2 + sum(needed.values())


def test_a_factor_is_flipped_only_on_the_services_it_applies_to():
    flipped = {(s, c.factor) for s, c in all_flips()}
    assert ("python-api-pkl", "zipmap") not in flipped
    assert ("python-api-pkl", "ort_threads") not in flipped
    assert ("go-api-onnx", "server") not in flipped
    assert ("python-api-onnx", "gomaxprocs") not in flipped
    assert ("go-api-onnx", "gomaxprocs") in flipped
    assert ("go-api-onnx", "access_log") in flipped and ("go-api-onnx", "traces") in flipped


def test_further_values_come_from_the_tuned_end_only_and_only_when_asked():
    with_extras = [c for _, c in all_flips() if c.value == "1"]
    assert with_extras == [Config("tuned", "gomaxprocs", "1")]
    assert not [c for _, c in all_flips(extras=False) if c.value == "1"]


def test_the_smoke_plan_is_the_tuned_end_and_four_flips():
    size = sizing.for_profile("smoke").why
    stacks = ablation_plan.plan(
        SERVICE_NAMES, size.ends, size.extras, ablation_plan.chosen_factors(size)
    )
    assert stacks[0].name == "tuned"
    assert all(c.end == "tuned" for s in stacks for c in s.members.values())
    flipped = {c.factor for s in stacks for c in s.members.values()} - {None}
    assert flipped == {"access_log", "traces", "telemetry", "gomaxprocs"}
    assert len(stacks) == 5  # gomaxprocs (Go only) needs a stack of its own


def test_a_factor_left_out_of_the_plan_keeps_its_ends_value():
    stacks = ablation_plan.plan(SERVICE_NAMES, factors=[factors.factor("server")])
    by_config = {c: s.telemetry for s in stacks for c in s.members.values()}
    assert by_config[Config("published")] == "collector"
    assert by_config[Config("published", "server", "tuned")] == "collector"
    assert by_config[Config("tuned", "server", "published")] == "pull"
    assert len(stacks) == 4


def test_the_published_environment_of_each_service():
    go, telemetry = factors.environment("go-api-onnx", Config("published"), ARTIFACTS)
    assert telemetry == "collector"
    assert go["GODEBUG"] == "containermaxprocs=0,updatemaxprocs=0"
    assert go["MODEL_PATH"] == "/artifacts/model_zipmap.onnx"
    assert go["ORT_INTRA_OP_NUM_THREADS"] == "0" and go["ORT_ALLOW_SPINNING"] == "1"
    assert go["ACCESS_LOG"] == "1" and go["OTEL_TRACES_EXPORTER"] == "otlp"
    assert go["OTEL_BSP_SCHEDULE_DELAY"] == "3000" and go["OTEL_METRIC_EXPORT_INTERVAL"] == "3000"
    assert "UVICORN_LOOP" not in go
    pkl, _ = factors.environment("python-api-pkl", Config("published"), ARTIFACTS)
    assert pkl["UVICORN_LOOP"] == "asyncio" and pkl["UVICORN_HTTP"] == "h11"
    assert not {"MODEL_PATH", "ORT_INTRA_OP_NUM_THREADS", "GODEBUG"} & set(pkl)


def test_one_flip_changes_one_factor_and_the_telemetry_path_follows_it():
    base, _ = factors.environment("python-api-onnx", Config("tuned"), ARTIFACTS)
    flip, telemetry = factors.environment(
        "python-api-onnx", Config("tuned", "ort_threads", "published"), ARTIFACTS
    )
    assert {k for k in base if base[k] != flip.get(k)} == {"ORT_INTRA_OP_NUM_THREADS"}
    assert telemetry == "pull"
    _, pushed = factors.environment(
        "go-api-onnx", Config("tuned", "telemetry", "published"), ARTIFACTS
    )
    _, pulled = factors.environment(
        "go-api-onnx", Config("published", "telemetry", "tuned"), ARTIFACTS
    )
    assert (pushed, pulled) == ("collector", "pull")
    one, _ = factors.environment("go-api-onnx", Config("tuned", "gomaxprocs", "1"), ARTIFACTS)
    assert one["GOMAXPROCS"] == "1" and "GODEBUG" not in one


def test_what_a_python_service_says_decides_its_published_values():
    record = started(PYTHON_LOG, service="python-api-onnx")
    found = ablation.check_values(record, Config("published"), factors.FACTORS)
    assert found == {
        "server": None, "access_log": None, "traces": None, "telemetry": None,
        "zipmap": None, "ort_threads": None, "ort_spinning": None,
    }  # fmt: skip
    quiet = started("INFO:     python-api-onnx: uvloop + httptools, access log off\n")
    quiet.service = "python-api-onnx"
    found = ablation.check_values(quiet, Config("published"), factors.FACTORS)
    assert all(reason for reason in found.values()), found
    assert "asyncio + h11" in found["server"]


def test_an_access_log_is_recognised_by_what_the_service_does():
    silent = started(GO_LOG, lines_per_request=0.0)
    assert "0.0 log lines each" in factors.logs_every_request(silent)
    assert factors.logs_every_request(started(GO_LOG, lines_per_request=1.0)) is None
    assert factors.logs_every_request(started('{"access_log":true}', 0.0)) is None


def test_gomaxprocs_checks_compare_the_logged_value():
    record = Started("go-api-onnx", GO_LOG, gomaxprocs=2, num_cpu=8)
    host = factors.factor("gomaxprocs").published.check
    one = factors.factor("gomaxprocs").setting("1").check
    assert "GOMAXPROCS=2, not the host's CPU count (8)" in host(record)
    assert "not 1" in one(record)
    record.gomaxprocs = 8
    assert host(record) is None
    record.gomaxprocs = 1
    assert one(record) is None
    record.gomaxprocs = None
    assert "does not log GOMAXPROCS" in host(record)


def test_started_reads_the_go_start_up_line(tmp_path: Path):
    log = tmp_path / "go-api-onnx.log"
    log.write_text(GO_LOG)
    record = Started.read("go-api-onnx", log, None)
    assert (record.gomaxprocs, record.num_cpu) == (2, 8)
    assert "intra_op_threads" in record.text


def test_a_flip_is_not_measured_when_either_of_its_values_is_not_honoured():
    honoured = {
        ("go-api-onnx", "traces", "published"): "it does not say so",
        ("go-api-onnx", "zipmap", "published"): None,
    }
    from_published = Config("published", "traces", "tuned")
    assert "traces=published is not honoured" in ablation._flip_problem(
        "go-api-onnx", from_published, honoured
    )
    assert ablation._flip_problem("go-api-onnx", Config("tuned", "traces", "published"), honoured)
    assert (
        ablation._flip_problem("go-api-onnx", Config("tuned", "zipmap", "published"), honoured)
        is None
    )
    assert ablation._flip_problem("go-api-onnx", Config("published"), honoured) is None


def test_rates_come_from_the_capacity_section_or_the_stated_default():
    capacity = {
        "go-api-onnx": {"rate_rps": 1000, "display": "1000"},
        "python-api-pkl": {"rate_rps": None},
    }
    rates = ablation_plan.rates_for(SERVICE_NAMES, capacity, heavy=True, heavy_default_rps=321)
    assert [r.rps for r in rates["go-api-onnx"]] == [267, 800]
    assert "80 % of the tuned capacity" in rates["go-api-onnx"][1].source
    assert [r.rps for r in rates["python-api-pkl"]] == [267, 321]
    assert "default" in rates["python-api-pkl"][1].source
    light = ablation_plan.rates_for(SERVICE_NAMES, capacity, heavy=False)
    assert all([r.label for r in rs] == ["seed peak"] for rs in light.values())


def test_a_result_survives_its_file(tmp_path: Path):
    result = ablation.Result(
        rows=[{"service": "svc", "p95_ms": 1.5}],
        skipped=[{"service": "svc", "reason": "no"}],
        capacities={"tuned": {"svc": {"rate_rps": 10}}},
    )
    path = result.save(tmp_path / "ablation.json")
    assert json.loads(path.read_text())["rows"][0]["p95_ms"] == 1.5
    again = ablation.Result.load(path)
    assert again.rows == result.rows and again.capacities == result.capacities


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(KeyError, match="known: server"):
        factors.factor("nope")
    with pytest.raises(KeyError, match="no value"):
        factors.factor("traces").setting("sometimes")
    with pytest.raises(ValueError, match="smoke"):
        sizing.for_profile("huge")


def test_every_profile_sizes_the_why_with_known_ends_and_factors():
    for profile in sizing.PROFILES:
        size = sizing.for_profile(profile).why
        assert set(size.ends) <= set(factors.ENDS), profile
        assert ablation_plan.chosen_factors(size), profile  # an unknown factor name raises


def test_the_parts_of_a_run_go_in_order_and_all_must_run(tmp_path: Path):
    said: list[str] = []
    rates = ablation_plan.rates_for(SERVICE_NAMES, None, heavy=False)
    size = sizing.for_profile("smoke").why
    stale = tmp_path / "ablation" / "r0-tuned"
    stale.mkdir(parents=True)
    run = ablation.Ablation("local", tmp_path, ARTIFACTS, rates, size, progress=said.append)
    assert not stale.exists()  # an earlier run's logs and TSDB must not answer for this one
    assert run.capacities() == {} and "no capacity search" in said[-1]
    run.repeat(1)  # smoke has one repeat: said, not run
    assert "measures 1 repeat(s): no repeat 2" in said[-1]
    with pytest.raises(RuntimeError, match=r"repeats \[1\] of 1 did not run"):
        run.finish()
    two = sizing.WhySize(4.0, 2, False, ("tuned",), False, ("traces",), 0)
    with pytest.raises(RuntimeError, match="before repeat 1"):
        ablation.Ablation("local", tmp_path, ARTIFACTS, rates, two, progress=said.append).repeat(1)
    with pytest.raises(ValueError, match="repeats=4"):
        ablation.Ablation("local", tmp_path, ARTIFACTS, rates, sizing.WhySize(4.0, 4, False,
                          ("tuned",), False, None, 0))  # fmt: skip
