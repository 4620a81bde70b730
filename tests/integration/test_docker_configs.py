"""The compose stack's configuration, checked by what can check it without pulling an image.

Prometheus' configs by `promtool check config` (the real parser, Debian's 2.42); the compose
files by `docker-compose config` / `docker compose config` (the real parsers, no engine needed);
the collector's and Grafana's configs — whose images cannot be had on machines without a
registry — by their structure and by agreeing with the compose file on names and ports.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import paths
from helpers.serving.services import SERVICE_NAMES

pytestmark = pytest.mark.docker

ROOT = paths.REPO_ROOT
COMPOSE = ROOT / "docker-compose.yaml"
SCRAPE_OVERRIDE = ROOT / "docker-compose.scrape.yaml"
PROMETHEUS_DIR = paths.OBSERVABILITY_DIR / "prometheus"
COLLECTOR_CONFIG = paths.OBSERVABILITY_DIR / "otel-collector" / "config.yaml"
GRAFANA_DIR = paths.OBSERVABILITY_DIR / "grafana"
DATASOURCE_UID = "onnx-study-prometheus"
SEED_PORTS = {"python-api-pkl": 5001, "python-api-onnx": 5002, "go-api-onnx": 5003}
THIRD_PARTY_IMAGES = {
    "otel-collector": "OTEL_COLLECTOR_IMAGE",
    "prometheus": "PROMETHEUS_IMAGE",
    "cadvisor": "CADVISOR_IMAGE",
    "grafana": "GRAFANA_IMAGE",
    "k6": "K6_IMAGE",
}


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load(COMPOSE)


def _compose_commands() -> list[list[str]]:
    commands = []
    if shutil.which("docker-compose"):
        commands.append(["docker-compose"])
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            commands.append(["docker", "compose"])
    return commands


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.scrape.yml"])
def test_promtool_accepts_the_prometheus_config(config: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found (make setup installs Debian's prometheus)")
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_DIR / config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("files", [[COMPOSE], [COMPOSE, SCRAPE_OVERRIDE]], ids=["full", "scrape"])
def test_compose_accepts_the_files(files: list[Path]) -> None:
    commands = _compose_commands()
    if not commands:
        pytest.skip("neither docker-compose nor `docker compose` is installed")
    for command in commands:
        argv = [*command, "--project-directory", str(ROOT)]
        for file in files:
            argv += ["-f", str(file)]
        result = subprocess.run(
            [*argv, "config", "-q"], capture_output=True, text=True, check=False, cwd=ROOT
        )
        assert result.returncode == 0, f"{' '.join(command)}: {result.stderr}"


def test_the_apis_have_the_study_budget_and_the_seed_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in SERVICE_NAMES:
        service = services[name]
        limits = service["deploy"]["resources"]["limits"]
        assert (str(limits["cpus"]), str(limits["memory"])) == ("0.5", "128M"), name
        assert service["container_name"] == name  # cAdvisor's `name` label
        assert any(v.endswith(":/app/artifacts:ro") for v in service["volumes"]), name
        [port] = service["ports"]
        assert re.search(rf":-{SEED_PORTS[name]}\}}:5000$", port), port
        env = service["environment"]
        assert env["OTEL_METRICS_EXPORTER"] == "otlp"
        assert env["OTEL_SERVICE_NAME"] == name
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
        # The subset "APIs + Prometheus" must start without the collector.
        assert "depends_on" not in service, f"{name} must not depend on other services"
        build = service["build"]
        dockerfile = ROOT / build["context"] / build["dockerfile"]
        assert dockerfile.exists(), f"{name}: {dockerfile} is missing"


def test_every_third_party_image_is_pinned_and_overridable(compose: dict[str, Any]) -> None:
    for service, variable in THIRD_PARTY_IMAGES.items():
        image = compose["services"][service]["image"]
        found = re.fullmatch(r"\$\{(\w+):-([^}]+)\}", image)
        assert found, f"{service}: image {image!r} is not ${{VAR:-default}}"
        assert found.group(1) == variable
        default = found.group(2)
        assert ":" in default and not default.endswith(":latest"), f"{service}: {default}"


def test_prometheus_receives_remote_write(compose: dict[str, Any]) -> None:
    assert "--web.enable-remote-write-receiver" in compose["services"]["prometheus"]["command"]


def _dockerfile_user(service: dict[str, Any]) -> str:
    build = service["build"]
    text = (ROOT / build["context"] / build["dockerfile"]).read_text()
    [user] = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    return user


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_the_apis_run_with_least_privilege(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    assert service["cap_drop"] == ["ALL"] and "cap_add" not in service
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["read_only"] is True
    assert "privileged" not in service
    assert [t.split(":")[0] for t in service["tmpfs"]] == ["/tmp"]
    uid, gid = (int(part) for part in service["user"].split(":"))
    assert uid > 0 and gid > 0
    image_uid, _, image_gid = _dockerfile_user(service).partition(":")
    assert int(image_uid) == uid, "compose's user must be the image's own (it owns nothing else)"
    assert image_gid in ("", str(gid))
    if name.startswith("python-"):  # a read-only root: no bytecode to write
        assert service["environment"]["PYTHONDONTWRITEBYTECODE"] == "1"


def test_compose_itself_applies_the_hardening_to_every_api() -> None:
    """Through compose's own parser: the shared `x-api` anchor reaches each API."""
    commands = _compose_commands()
    if not commands:
        pytest.skip("neither docker-compose nor `docker compose` is installed")
    for command in commands:
        resolved = subprocess.run(
            [*command, "--project-directory", str(ROOT), "-f", str(COMPOSE), "config"],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        services = yaml.safe_load(resolved.stdout)["services"]
        for name in SERVICE_NAMES:
            service = services[name]
            assert service["cap_drop"] == ["ALL"], (command, name)
            assert service["security_opt"] == ["no-new-privileges:true"], (command, name)
            assert service["read_only"] is True and service["user"] == "10001:10001"
            assert any("/tmp" in str(t) for t in service["tmpfs"]), (command, name)


def test_prometheus_serves_no_admin_api_and_no_lifecycle(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    flags = {flag.split("=", 1)[0] for flag in prometheus["command"]}
    assert not flags & {"--web.enable-admin-api", "--web.enable-lifecycle"}
    assert prometheus["cap_drop"] == ["ALL"] and prometheus["read_only"] is True
    assert "no-new-privileges:true" in prometheus["security_opt"]


def test_grafana_has_no_default_login_and_no_anonymous_viewer(compose: dict[str, Any]) -> None:
    env = compose["services"]["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"  # no default
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_USER(:-\w+)?\}", env["GF_SECURITY_ADMIN_USER"])
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in env


def test_the_other_services_need_no_grafana_password() -> None:
    """`${VAR:?}` would fail `config` (and every `up` of a subset): compose interpolates all
    services first. Without the variable, compose accepts the file and starts the APIs."""
    commands = _compose_commands()
    if not commands:
        pytest.skip("neither docker-compose nor `docker compose` is installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFANA_ADMIN")}
    for command in commands:
        result = subprocess.run(
            [*command, "--project-directory", str(ROOT), "-f", str(COMPOSE), "config", "-q"],
            capture_output=True, text=True, check=False, cwd=ROOT, env=env,
        )  # fmt: skip
        assert result.returncode == 0, f"{' '.join(command)}: {result.stderr}"


@pytest.mark.parametrize(
    ("password", "starts"), [(None, False), ("", False), ("admin", False), ("s3cret-x", True)]
)
def test_grafanas_entrypoint_refuses_a_missing_or_default_password(
    compose: dict[str, Any], tmp_path: Path, password: str | None, starts: bool
) -> None:
    """The entrypoint's own shell code, run by /bin/sh; only the image's /run.sh (not here:
    no Grafana image) is a stand-in that says it was started, with its arguments."""
    entrypoint = compose["services"]["grafana"]["entrypoint"]
    assert entrypoint[:2] == ["/bin/sh", "-c"]
    run_sh = tmp_path / "run.sh"
    run_sh.write_text('#!/bin/sh\necho "grafana started $*"\n')
    run_sh.chmod(0o755)
    script = entrypoint[2].replace("$$", "$")  # compose's escape for a literal `$`
    assert "exec /run.sh" in script
    script = script.replace("/run.sh", str(run_sh))
    env = {"PATH": os.environ["PATH"]}
    if password is not None:
        env["GF_SECURITY_ADMIN_PASSWORD"] = password
    result = subprocess.run(
        ["/bin/sh", "-c", script, *entrypoint[3:], "--flag"], capture_output=True, text=True,
        env=env, check=False,
    )  # fmt: skip
    if starts:
        assert result.returncode == 0 and result.stdout.strip() == "grafana started --flag"
    else:
        assert result.returncode == 78, result
        assert "set GRAFANA_ADMIN_PASSWORD" in result.stderr and not result.stdout


def test_the_scrape_override_switches_exporters_and_config(compose: dict[str, Any]) -> None:
    override = _load(SCRAPE_OVERRIDE)["services"]
    for name in SERVICE_NAMES:
        assert override[name]["environment"]["OTEL_METRICS_EXPORTER"] == "prometheus"
    [base_mount] = [
        v for v in compose["services"]["prometheus"]["volumes"] if v.endswith("prometheus.yml:ro")
    ]
    [override_mount] = override["prometheus"]["volumes"]
    # Same container path: compose replaces the base mount instead of adding a second one.
    assert override_mount.split(":")[1] == base_mount.split(":")[1]
    assert (
        ROOT / override_mount.split(":")[0]
    ).resolve() == PROMETHEUS_DIR / "prometheus.scrape.yml"


def _targets(config: dict[str, Any]) -> dict[str, list[str]]:
    return {
        job["job_name"]: [t for sc in job.get("static_configs", []) for t in sc["targets"]]
        for job in config["scrape_configs"]
    }


def _compose_default(value: str) -> str:
    """The collector's `${env:VAR:-default}` as it resolves under compose (VAR is unset there)."""
    return re.sub(r"\$\{env:\w+:-([^}]*)\}", r"\1", value)


def test_the_collector_pipeline_feeds_prometheus(compose: dict[str, Any]) -> None:
    collector = yaml.safe_load(_compose_default(COLLECTOR_CONFIG.read_text()))
    assert "OTELCOL_" not in str(compose["services"]["otel-collector"].get("environment", ""))
    pipeline = collector["service"]["pipelines"]["metrics"]
    for kind in ("receivers", "processors", "exporters"):
        for component in pipeline[kind]:
            assert component in collector[kind], f"{kind}: {component} is not defined"
    otlp_http = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    api_endpoint = compose["services"]["python-api-pkl"]["environment"][
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    ]
    assert otlp_http.rsplit(":", 1)[1] == api_endpoint.rsplit(":", 1)[1]
    exporter = collector["exporters"]["prometheus"]
    assert exporter["resource_to_telemetry_conversion"]["enabled"] is True
    prometheus = _load(PROMETHEUS_DIR / "prometheus.yml")
    targets = _targets(prometheus)
    assert targets["otel-collector"] == [f"otel-collector:{exporter['endpoint'].rsplit(':', 1)[1]}"]
    [collector_job] = [j for j in prometheus["scrape_configs"] if j["job_name"] == "otel-collector"]
    assert collector_job["honor_labels"] is True  # keep `job` = service name
    assert targets["cadvisor"] == ["cadvisor:8080"]


def test_the_direct_scrape_has_one_job_per_service(compose: dict[str, Any]) -> None:
    targets = _targets(_load(PROMETHEUS_DIR / "prometheus.scrape.yml"))
    port = compose["services"]["python-api-pkl"]["environment"]["OTEL_EXPORTER_PROMETHEUS_PORT"]
    for name in SERVICE_NAMES:
        assert targets[name] == [f"{name}:{port}"]


def test_grafana_provisioning_matches_the_stack(compose: dict[str, Any]) -> None:
    [datasource] = _load(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yaml")[
        "datasources"
    ]
    assert datasource["uid"] == DATASOURCE_UID
    assert datasource["url"] == "http://prometheus:9090"
    [provider] = _load(GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yaml")["providers"]
    mounts = dict(reversed(v.rsplit(":", 2)[:2]) for v in compose["services"]["grafana"]["volumes"])
    assert mounts[provider["options"]["path"]] == "./observability/grafana/dashboards"
    for dashboard in (GRAFANA_DIR / "dashboards").glob("*.json"):
        uids = set(re.findall(r'"uid":\s*"([^"]+)"', dashboard.read_text()))
        datasource_uids = {u for u in uids if "prometheus" in u.lower()}
        assert datasource_uids <= {DATASOURCE_UID}, f"{dashboard.name}: {datasource_uids}"


def test_every_build_arg_is_declared_by_its_dockerfile(compose: dict[str, Any]) -> None:
    """A build arg the Dockerfile does not declare is silently ignored: a base-image override
    that never takes effect would make an offline build reach for a registry."""
    for name in SERVICE_NAMES:
        build = compose["services"][name]["build"]
        dockerfile = (ROOT / build["context"] / build["dockerfile"]).read_text()
        declared = set(re.findall(r"^ARG\s+(\w+)", dockerfile, re.MULTILINE))
        missing = set(build["args"]) - declared
        assert not missing, f"{name}: build args {missing} not declared in its Dockerfile"
