"""The docker backend's pure parts: limits from inspect, cgroup paths, configs, interpolation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers import paths
from helpers.serving.docker import stack as docker_stack
from helpers.serving.stack import Limits


def test_limits_from_nanocpus_or_quota_and_memory() -> None:
    nano = {"HostConfig": {"NanoCpus": 500_000_000, "Memory": 134217728}}
    assert docker_stack.limits_from_inspect(nano) == Limits(0.5, 134217728, True)
    quota = {"HostConfig": {"NanoCpus": 0, "CpuQuota": 50_000, "CpuPeriod": 100_000, "Memory": 1}}
    assert docker_stack.limits_from_inspect(quota) == Limits(0.5, 1, True)
    none = {"HostConfig": {"NanoCpus": 0, "CpuQuota": 0, "Memory": 0}}
    assert docker_stack.limits_from_inspect(none) == Limits(None, None, False)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("12:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n", "docker/abc"),
        ("0::/system.slice/docker-abc.scope\n", "system.slice/docker-abc.scope"),
    ],
    ids=["v1", "v2"],
)
def test_cgroup_relpath_reads_proc(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "cgroup").write_text(content)
    assert docker_stack.cgroup_relpath(42, proc=tmp_path) == expected


def test_the_runs_prometheus_config_drops_absent_jobs_and_adds_the_exporter() -> None:
    base = paths.OBSERVABILITY_DIR / "prometheus" / "prometheus.scrape.yml"
    keep = ["prometheus", "python-api-pkl", "python-api-onnx", "go-api-onnx"]
    config = yaml.safe_load(docker_stack.render_prometheus_config(base, keep, "172.18.0.1:9400"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {*keep, "cgroup-exporter"}
    assert jobs["cgroup-exporter"]["honor_labels"] is True
    assert jobs["cgroup-exporter"]["static_configs"] == [{"targets": ["172.18.0.1:9400"]}]
    assert config["global"]["scrape_interval"] == "1s"


def test_compose_defaults_and_interpolation_follow_compose() -> None:
    defaults = docker_stack.compose_defaults()
    for variable in (*docker_stack.REQUIRED_IMAGES, *docker_stack.OPTIONAL_SERVICES.values()):
        assert ":" in defaults[variable], variable
    assert docker_stack.interpolate("${A:-x}/${B}", {"B": "b"}) == "x/b"
    assert docker_stack.interpolate("${A:-x}", {"A": "a"}) == "a"


def test_an_unknown_image_mode_is_a_clear_error() -> None:
    with pytest.raises(docker_stack.DockerStackError, match="STUDY_DOCKER_IMAGES='nope'"):
        docker_stack.choose_images(client=None, mode="nope")


def test_ports_follow_the_compose_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_API_PKL_PORT", "15001")
    ports = docker_stack.DockerStack._resolve_ports({"prometheus": 19090})
    assert ports["python-api-pkl"] == 15001 and ports["prometheus"] == 19090
    assert ports["go-api-onnx"] == 5003
    with pytest.raises(ValueError, match="unknown port name"):
        docker_stack.DockerStack._resolve_ports({"cgroup-exporter": 1})
