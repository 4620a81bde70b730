"""k6-operator TestRuns (k6.io/v1alpha1): the study's load, split over `parallelism` runners.

The scripts are the study's own (k6/seed.js, k6/capacity.js, from the ConfigMap `k6-scripts`)
with the environment helpers.load.k6 gives them locally: TARGETS (the Services' cluster
names), FEATURE_RANGES (from the served model's ConfigMap), PROFILE_JSON (a profile of
k6/profiles.json), RUN_ID, and the remote-write output to the cluster's Prometheus with the
same trend stats — so k6's series carry the same `run_id`, `service`, `scenario`, `mode` and
`profile` tags as a local run's. k6-operator adds `instance_id` per runner (and
`testrun_name`), so runners' series never collide: the study's queries sum over them.
k6 splits every scenario's rate and VUs across runners (execution segments), so the planned
load is the profile's whatever the parallelism.

Every pod a TestRun makes — the runners, the initializer (k6-operator copies the runner's
settings into it) and the starter — passes the restricted Pod Security Standard as the
study's own pods do, with no service-account token (none of them calls the API server), and a
memory emptyDir at /tmp: the initializer writes the script's archive and its log there. The
runners carry the label the APIs' NetworkPolicies admit (`security.K6_RUNNER`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from helpers.kubernetes import objects, security, sources
from helpers.load import loadtest
from helpers.load.k6 import TREND_STATS
from helpers.load.profiles import MODES, Profile

SEED_SCRIPT = loadtest.SEED_SCRIPT.name
CAPACITY_SCRIPT = "capacity.js"  # k6/capacity.js: one constant-rate step against one service
STEP_S = 10.0  # a capacity step on a cluster: one k6 run, as long as a seed-size step here
REMOTE_WRITE_STATS = "p(50),p(95),p(99)"  # what helpers.load.k6 asks for locally
MAX_PARALLELISM = 100
# k6-operator names its Jobs <TestRun>-initializer etc.; a Job name must stay within 63.
_RUN_ID = re.compile(r"[a-z0-9]([-a-z0-9]{0,28}[a-z0-9])?")
K6_RUN_AS = sources.RunAs(12345, 12345)  # grafana/k6's `k6` user (and the local stand-in's)
STARTER_RUN_AS = sources.RunAs(65532, 65532)  # k6-operator's starter image (curl), non-root
SCRATCH = {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}


def check_parallelism(value: Any) -> int:
    """A whole number of runners in 1..MAX_PARALLELISM, else ValueError in one line."""
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_PARALLELISM:
        raise ValueError(f"parallelism must be a whole number from 1 to {MAX_PARALLELISM}, "
                         f"got {value!r}")  # fmt: skip
    return number


def check_run_id(run_id: str) -> str:
    """Lower-case letters, digits and dashes (it names the TestRuns too), at most 30 chars."""
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(
            f"run id {run_id!r}: use lower-case letters, digits and '-' (at most 30), "
            "starting and ending with a letter or digit"
        )
    return run_id


def _env(
    run_id: str, push_interval_s: float, apis: list[sources.ApiSource], **variables: str
) -> list[dict[str, Any]]:
    """k6's environment against `apis` (TARGETS: their cluster URLs)."""
    targets = {api.name: objects.service_url(api) for api in apis}
    ranges = {"configMapKeyRef": {"name": objects.MODEL_CONFIGMAP,
                                  "key": objects.FEATURE_RANGES_KEY}}  # fmt: skip
    plain = {
        "RUN_ID": run_id,
        "TARGETS": json.dumps(targets),
        "K6_NO_USAGE_REPORT": "true",
        "K6_PROMETHEUS_RW_SERVER_URL": objects.remote_write_url(),
        "K6_PROMETHEUS_RW_TREND_STATS": REMOTE_WRITE_STATS,
        "K6_PROMETHEUS_RW_PUSH_INTERVAL": f"{push_interval_s:g}s",
        **variables,
    }
    return [
        {"name": "FEATURE_RANGES", "valueFrom": ranges},
        *({"name": k, "value": v} for k, v in plain.items()),
    ]


def _testrun(name: str, script: str, parallelism: int, env: list[dict], image: str) -> dict:
    return {
        "apiVersion": "k6.io/v1alpha1",
        "kind": "TestRun",
        "metadata": {"name": name, "namespace": objects.NAMESPACE,
                     "labels": {"app.kubernetes.io/part-of": objects.PART_OF}},
        "spec": {
            "parallelism": parallelism,
            "script": {"configMap": {"name": objects.K6_CONFIGMAP, "file": script}},
            "args": ["--out", "experimental-prometheus-rw",
                     "--summary-trend-stats", TREND_STATS],
            "runner": {
                "image": image,
                "env": env,
                "metadata": {"labels": {security.NAME_LABEL: security.K6_RUNNER,
                                        "app.kubernetes.io/part-of": objects.PART_OF}},
                **_least_privilege(K6_RUN_AS),
                "volumes": [SCRATCH],
                "volumeMounts": [{"name": SCRATCH["name"], "mountPath": "/tmp"}],
            },
            "starter": _least_privilege(STARTER_RUN_AS),
        },
    }  # fmt: skip


def _least_privilege(run_as: sources.RunAs) -> dict[str, Any]:
    """The fields of one TestRun pod (runner, initializer, starter) that make it restricted."""
    return {
        "automountServiceAccountToken": "false",  # a string in k6-operator's CRD
        "securityContext": security.pod_context(run_as),
        "containerSecurityContext": security.container_context(run_as),
    }


def seed(profile: Profile, mode: str, run_id: str, parallelism: int, image: str) -> dict:
    """seed.js with one profile in one mode (coupled: the post's loop; isolated: one service
    at a time), tagged like a local run so notebook 05's queries select it by run_id."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is unknown; expected one of {', '.join(MODES)}")
    env = _env(
        run_id,
        profile.push_interval_s,
        sources.apis(),
        PROFILE=profile.name,
        PROFILE_JSON=json.dumps(profile.raw),
        MODE=mode,
    )
    name = f"{check_run_id(run_id)}-{profile.name}-{mode}"
    return _testrun(name, SEED_SCRIPT, check_parallelism(parallelism), env, image)


def capacity(service: str, rate_rps: int, run_id: str, parallelism: int, image: str) -> dict:
    """One step of notebook 06's search: capacity.js at a constant `rate_rps` against one
    service, as long as a step of the seed-sized search, judged by the same objective."""
    if not (isinstance(rate_rps, int) and rate_rps > 0):
        raise ValueError(f"capacity rate must be a positive whole number of req/s: {rate_rps!r}")
    apis = {api.name: api for api in sources.apis()}
    if service not in apis:
        raise ValueError(f"service {service!r} is unknown; expected one of {', '.join(apis)}")
    env = _env(  # capacity.js loads exactly one service
        run_id,
        1.0,
        [apis[service]],
        RATE=str(rate_rps),
        DURATION_S=f"{STEP_S:g}",
    )
    name = f"{check_run_id(run_id)}-cap-{service}"
    return _testrun(name, CAPACITY_SCRIPT, check_parallelism(parallelism), env, image)
