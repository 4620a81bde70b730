"""Notebook 08's plan, environments, checks, rates and record (helpers.load.ablation_plan,
helpers.load.ablation), without a stack.

Every configuration must be an instance of its own with the environment and telemetry path
its factors give it; a flip is measured only when its instance shows it runs with the value
(what it says at start is given here as text); the comparisons' rate is the lower of the two
ends' shares, and falls back as stated when a capacity is unknown.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from helpers import sizing
from helpers.load import ablation, ablation_plan, factors, interleave, windows
from helpers.load.ablation_plan import Config, Configuration
from helpers.load.factors import Started
from helpers.serving.instances import SERVICE_NAMES, check_unique

ARTIFACTS = Path("/artifacts")
PYTHON_LOG = (
    "INFO:     python-api-onnx: /a/model_zipmap.onnx sha256 ab, runtime onnxruntime 1.31.1 "
    "(intra_op_threads=0, spinning=1, input float32, probabilities zipmap output_probability), "
    "metrics otlp, traces otlp, predict stage full, asyncio + h11, access log on\n"
    '{"status":"ok","model_sha256":"ab","runtime":"onnxruntime 1.31.1","framework":"fastapi"}\n'
)
GO_LOG = (
    '{"msg":"starting","gomaxprocs":2,"num_cpu":8,"intra_op_threads":1,"allow_spinning":false}\n'
    '{"msg":"listening","metrics_exporter":"prometheus"}\n'
)


def started(text: str, lines_per_request: float = 0.0, service: str = "svc") -> Started:
    record = Started(service, text, probe_log_lines=lambda: lines_per_request)
    record.gomaxprocs = factors.gomaxprocs_from_log(text)
    return record


def test_every_configuration_is_an_instance_with_its_own_environment_and_telemetry():
    made = ablation_plan.configurations(SERVICE_NAMES)
    instances = ablation_plan.instances(made, ARTIFACTS)
    by_name = check_unique(instances)  # unique, valid names
    assert len(by_name) == len(made)
    for configuration, instance in zip(made, instances, strict=True):
        env, telemetry = ablation_plan.environment(configuration.service, configuration.config,
                                                   ARTIFACTS)  # fmt: skip
        assert instance.name == configuration.name == f"{instance.service}.{configuration.tag}"
        assert dict(instance.environment) == env and instance.telemetry == telemetry
    names = set(by_name)
    assert {"python-api-onnx.ort-threads", "go-api-onnx.gomaxprocs-1",
            "python-api-pkl.access-log", "go-api-onnx.published"} <= names  # fmt: skip
    assert by_name["go-api-onnx.telemetry"].telemetry == "collector"
    assert by_name["go-api-onnx.tuned"].telemetry == "pull"


def test_each_service_gets_both_ends_and_only_the_flips_that_apply_to_it():
    made = ablation_plan.configurations(SERVICE_NAMES)
    labels = {s: [c.label for c in made if c.service == s] for s in SERVICE_NAMES}
    for service, mine in labels.items():
        assert mine[:2] == ["tuned", "published"], service
        assert Counter(mine).most_common(1)[0][1] == 1, service
    assert "framework" in labels["python-api-pkl"] and "framework" not in labels["go-api-onnx"]
    assert "zipmap" not in labels["python-api-pkl"] and "server" not in labels["go-api-onnx"]
    assert "gomaxprocs" in labels["go-api-onnx"] and "gomaxprocs" not in labels["python-api-onnx"]
    flips = [c.config for c in made if c.factor]
    assert all(c.end == "tuned" for c in flips)  # flips from the published end: not measured
    assert [c.label for c in made if "=" in c.label] == ["gomaxprocs=1"]
    without = ablation_plan.configurations(SERVICE_NAMES, extras=False)
    assert not [c for c in without if "=" in c.label]


def test_the_smoke_profile_flips_its_factors_only():
    size = sizing.for_profile("smoke").why
    made = ablation_plan.configurations(SERVICE_NAMES, ablation_plan.chosen_factors(size),
                                        size.extras)  # fmt: skip
    assert {c.factor for c in made} - {None} == set(size.factors)
    assert sum(c.service == "go-api-onnx" for c in made) == 2 + 4  # ends + its four flips


def test_the_published_environment_of_each_service():
    go, telemetry = ablation_plan.environment("go-api-onnx", Config("published"), ARTIFACTS)
    assert telemetry == "collector"
    assert go["GODEBUG"] == "containermaxprocs=0,updatemaxprocs=0"
    assert go["MODEL_PATH"] == "/artifacts/model_zipmap.onnx"
    assert go["ORT_INTRA_OP_NUM_THREADS"] == "0" and go["ORT_ALLOW_SPINNING"] == "1"
    assert go["ACCESS_LOG"] == "1" and go["OTEL_TRACES_EXPORTER"] == "otlp"
    assert go["OTEL_BSP_SCHEDULE_DELAY"] == "3000" and go["OTEL_METRIC_EXPORT_INTERVAL"] == "3000"
    assert not {"UVICORN_LOOP", "FRAMEWORK"} & set(go)
    pkl, _ = ablation_plan.environment("python-api-pkl", Config("published"), ARTIFACTS)
    assert pkl["UVICORN_LOOP"] == "asyncio" and pkl["UVICORN_HTTP"] == "h11"
    assert pkl["FRAMEWORK"] == "fastapi"
    assert not {"MODEL_PATH", "ORT_INTRA_OP_NUM_THREADS", "GODEBUG"} & set(pkl)
    tuned, _ = ablation_plan.environment("python-api-pkl", Config("tuned"), ARTIFACTS)
    assert "FRAMEWORK" not in tuned  # the services' default is the tuned value


def test_one_flip_changes_one_factor_and_the_telemetry_path_follows_it():
    base, _ = ablation_plan.environment("python-api-onnx", Config("tuned"), ARTIFACTS)
    flip, telemetry = ablation_plan.environment(
        "python-api-onnx", Config("tuned", "ort_threads", "published"), ARTIFACTS
    )
    assert {k for k in base if base[k] != flip.get(k)} == {"ORT_INTRA_OP_NUM_THREADS"}
    assert telemetry == "pull"
    _, pushed = ablation_plan.environment(
        "go-api-onnx", Config("tuned", "telemetry", "published"), ARTIFACTS
    )
    assert pushed == "collector"
    one, _ = ablation_plan.environment("go-api-onnx", Config("tuned", "gomaxprocs", "1"), ARTIFACTS)
    assert one["GOMAXPROCS"] == "1" and "GODEBUG" not in one
    framework, _ = ablation_plan.environment(
        "python-api-onnx", Config("tuned", "framework", "published"), ARTIFACTS
    )
    assert {k for k in framework if framework[k] != base.get(k)} == {"FRAMEWORK"}


def test_what_a_python_service_says_decides_its_published_values():
    record = started(PYTHON_LOG, service="python-api-onnx")
    found = ablation.check_values(record, Config("published"))
    assert found == {
        "framework": None, "server": None, "access_log": None, "traces": None,
        "telemetry": None, "zipmap": None, "ort_threads": None, "ort_spinning": None,
    }  # fmt: skip
    quiet = started("INFO:     python-api-onnx: uvloop + httptools, access log off\n",
                    service="python-api-onnx")  # fmt: skip
    found = ablation.check_values(quiet, Config("published"))
    assert all(reason for reason in found.values()), found
    assert "asyncio + h11" in found["server"]
    assert "FastAPI path operations" in found["framework"]
    assert ablation.check_values(quiet, Config("tuned")) == {}  # tuned values: the defaults


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


def said_for(service: str, checked: dict[str, dict[str, str | None]]) -> dict[str, dict]:
    """What each instance of `service` said: label → factor → None or why not."""
    made = [c for c in ablation_plan.configurations([service]) if c.label in checked]
    return {c.name: {"service": service, "label": c.label, "checked": checked[c.label]}
            for c in made}  # fmt: skip


def test_a_flip_is_measured_only_when_its_instance_shows_the_value():
    made = [c for c in ablation_plan.configurations(["go-api-onnx"])
            if c.label in ("tuned", "published", "traces", "zipmap", "gomaxprocs=1")]  # fmt: skip
    said = said_for("go-api-onnx", {
        "tuned": {}, "published": {"traces": "it does not say so"},
        "traces": {"traces": "it does not say so"}, "zipmap": {"zipmap": None},
        "gomaxprocs=1": {"gomaxprocs": "it logs GOMAXPROCS=2, not 1 (1)"},
    })  # fmt: skip
    rates = {"go-api-onnx": ablation_plan.Rate(500, "given", True)}
    comparisons, skipped = ablation.plan_comparisons(made, said, rates)
    (comparison,) = comparisons
    assert [a.label for a in comparison.arms] == ["tuned", "published", "zipmap"]
    assert comparison.arms[0].target == "go-api-onnx.tuned"
    assert comparison.rate == 500
    reasons = {s["label"]: s["reason"] for s in skipped}
    assert reasons == {
        "traces": "traces=published is not honoured: it does not say so",
        "gomaxprocs=1": "gomaxprocs=1 is not honoured: it logs GOMAXPROCS=2, not 1 (1)",
    }
    assert ablation.not_honoured(said["go-api-onnx.published"]) == {"traces": "it does not say so"}


def test_the_rate_is_the_lower_share_of_the_two_ends_and_falls_back_as_stated():
    size = sizing.for_profile("quick").why
    published = {"rate_rps": 1000, "display": "1,000", "bound": "service"}
    tuned = {"rate_rps": 3000, "display": "3,000", "bound": "service"}
    rate = ablation_plan.rate_for(published, tuned, None, size, 100)
    assert rate.rps == round(size.rate_share_of_published * 1000) and rate.published_known
    assert "of the published end's capacity (1,000 req/s)" in rate.source
    small = ablation_plan.rate_for({**published, "rate_rps": 9000}, tuned, None, size, 100)
    assert small.rps == round(size.rate_share_of_tuned * 3000)
    assert "tuned end's capacity (3,000 req/s, searched here)" in small.source
    from_06 = {"rate_rps": 800, "display": "≥ 800 (time budget-bound)", "bound": "time budget"}
    fallback = ablation_plan.rate_for(None, None, from_06, size, 100)
    assert fallback.rps == round(size.rate_share_of_tuned * 800) and not fallback.published_known
    assert "800 req/s, a lower bound (time budget), notebook 06's" in fallback.source
    none = ablation_plan.rate_for({"rate_rps": None}, None, None, size, 123)
    assert none.rps == 123 and "stated default" in none.source


def test_no_search_without_a_budget(tmp_path: Path):
    said: list[str] = []
    size = sizing.for_profile("smoke").why
    assert size.capacity_s == 0
    assert ablation.search_ends(None, SERVICE_NAMES, size, {}, tmp_path, said.append) == {}
    assert "no capacity search" in said[-1]


def test_a_record_and_its_comparisons_survive_the_run_folder(tmp_path: Path):
    arms = [interleave.Arm("svc.tuned", "tuned"), interleave.Arm("svc.traces", "traces")]
    log = windows.WindowLog(tmp_path / ablation.COMPARISON_LOG)
    made = interleave.Comparison("svc", arms, 100)
    for r in range(4):
        taken = {}
        for arm, cpu in zip(arms, (0.10, 0.13), strict=True):
            w = windows.Window(arm.target, arm.label, 100, 1, r, float(r), r + 1.0, 1.0, 100,
                               100, 1, 2, 3, 4, cpu, 10, 0, 5e7, 0, 0.1,
                               cpu_with_tail_s=cpu * (1 + r / 100))  # fmt: skip
            taken[arm.label] = w
            log.append(w, comparison="svc")
        made.rounds.append(taken)
    record = ablation.Record(
        size={"capacity_s": 0}, rates={"svc": {"rps": 100}},
        skipped=[{"service": "svc", "label": "zipmap", "reason": "no"}],
        comparisons=[made.record(0.05)],
    )  # fmt: skip
    record.save(tmp_path)
    again = ablation.Record.load(tmp_path)
    assert again == record
    (remade,) = ablation.comparisons(tmp_path)
    assert remade.change("traces") == made.change("traces")
    assert remade.change("traces").value == pytest.approx(0.3)


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(KeyError, match="known: framework"):
        factors.factor("nope")
    with pytest.raises(KeyError, match="no value"):
        factors.factor("traces").setting("sometimes")
    for profile in sizing.PROFILES:
        assert ablation_plan.chosen_factors(sizing.for_profile(profile).why), profile


def test_configuration_tags_are_names_every_record_accepts():
    made = Configuration("go-api-onnx", "gomaxprocs=1", Config("tuned", "gomaxprocs", "1"))
    assert made.tag == "gomaxprocs-1" and made.name == "go-api-onnx.gomaxprocs-1"
    assert Configuration("x", "ort_spinning", Config("tuned")).tag == "ort-spinning"
