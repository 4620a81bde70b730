"""A real Docker engine of our own: start, run containers the way compose does, stop, leave nothing.

One engine is started for the module under a temporary folder (its own data-root, exec-root,
socket, pidfile), so this test never touches an engine a developer runs. The containers run a
tiny static Go program (`probe`, built here) imported as an image: no registry is needed.

Skipped, with the reason printed, only where no engine can be started (no dockerd, not root,
not Linux). Where dockerd is installed and we are root, a failure to start is a failure.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tarfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.net import free_port, wait_until_ready
from helpers.serving.docker import engine as docker_engine
from helpers.serving.docker.engine import DockerEngine, EngineUnavailable, ping
from helpers.serving.docker.standins import private_engine
from helpers.serving.docker.standins.private_engine import EngineLayout

pytestmark = [pytest.mark.integration, pytest.mark.docker]

PROBE_SOURCE = textwrap.dedent(
    """\
    // probe: the smallest server and client a container test needs, statically linked.
    package main

    import (
    \t"fmt"
    \t"io"
    \t"net/http"
    \t"os"
    \t"time"
    )

    func main() {
    \tswitch os.Args[1] {
    \tcase "echo":
    \t\tfmt.Println(os.Args[2])
    \tcase "cat":
    \t\tdata, err := os.ReadFile(os.Args[2])
    \t\tif err != nil {
    \t\t\tfmt.Println("error:", err)
    \t\t\tos.Exit(1)
    \t\t}
    \t\tfmt.Print(string(data))
    \tcase "serve":
    \t\thttp.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "pong") })
    \t\tpanic(http.ListenAndServe(os.Args[2], nil))
    \tcase "get":
    \t\t// Poll: the server container may still be starting (readiness is observed).
    \t\tdeadline := time.Now().Add(20 * time.Second)
    \t\tfor {
    \t\t\tresp, err := http.Get(os.Args[2])
    \t\t\tif err == nil {
    \t\t\t\tbody, _ := io.ReadAll(resp.Body)
    \t\t\t\tfmt.Println(string(body))
    \t\t\t\treturn
    \t\t\t}
    \t\t\tif time.Now().After(deadline) {
    \t\t\t\tfmt.Println("error:", err)
    \t\t\t\tos.Exit(1)
    \t\t\t}
    \t\t\ttime.Sleep(100 * time.Millisecond)
    \t\t}
    \t}
    }
    """
)
PROBE_IMAGE = "onnx-study-test/probe:latest"


def _network_interfaces() -> set[str]:
    return set(os.listdir("/sys/class/net"))


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = private_engine.why_engine_cannot_start()
    if reason:
        pytest.skip(f"no Docker engine can be started here: {reason}")
    return tmp_path_factory.mktemp("docker-engine")


@pytest.fixture(scope="module")
def interfaces_before() -> set[str]:
    return _network_interfaces()


@pytest.fixture(scope="module")
def engine(engine_dir: Path, interfaces_before: set[str]) -> Iterator[DockerEngine]:
    started = time.monotonic()
    engine = private_engine.start_engine(engine_dir)
    print(f"dockerd answered after {time.monotonic() - started:.1f} s at {engine.host}")
    try:
        yield engine
    finally:
        private_engine.stop_engine(engine_dir)


@pytest.fixture(scope="module")
def client(engine: DockerEngine):
    with contextlib.closing(engine.client()) as client:
        yield client


@pytest.fixture(scope="module")
def probe_image(client, tmp_path_factory: pytest.TempPathFactory) -> str:
    if shutil.which("go") is None:
        pytest.skip("go not found: the probe image is built from a tiny Go program")
    src = tmp_path_factory.mktemp("probe")
    (src / "main.go").write_text(PROBE_SOURCE)
    (src / "go.mod").write_text("module probe\n\ngo 1.21\n")
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-buildvcs=false", GOTOOLCHAIN="local")
    subprocess.run(["go", "build", "-trimpath", "-o", "probe", "."], cwd=src, env=env, check=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(src / "probe", arcname="probe")
    client.api.import_image(
        src=buffer.getvalue(), repository=PROBE_IMAGE.split(":")[0], tag="latest"
    )
    return PROBE_IMAGE


def _run(client, image: str, *command: str, **kwargs) -> str:
    output = client.containers.run(image, ["/probe", *command], remove=True, **kwargs)
    return output.decode().strip()


def test_the_engine_is_ours_and_isolated(engine: DockerEngine, engine_dir: Path) -> None:
    info = engine.info()
    layout = EngineLayout.for_dir(engine_dir)
    assert engine.owned
    assert info["DockerRootDir"] == str(layout.data_root)
    assert engine.host == f"unix://{layout.socket}"
    # Unix socket paths must stay under 108 bytes, whatever the checkout path.
    assert len(str(layout.socket)) < 100
    print(f"engine {info['ServerVersion']}, storage driver {info['Driver']}")


def test_start_is_idempotent(engine: DockerEngine, engine_dir: Path) -> None:
    again = private_engine.start_engine(engine_dir)
    assert again.host == engine.host
    assert again.pid == engine.pid


def test_runs_a_container(client, probe_image: str) -> None:
    assert _run(client, probe_image, "echo", "hello from a container") == "hello from a container"


def test_limits_are_enforced_by_the_kernel(client, probe_image: str) -> None:
    """The compose limits (0.5 CPU, 128 MiB) as the container's own cgroup sees them."""
    container = client.containers.run(
        probe_image,
        ["/probe", "serve", ":8000"],
        detach=True,
        nano_cpus=500_000_000,
        mem_limit=128 * 1024 * 1024,
    )
    try:
        host_config = client.api.inspect_container(container.id)["HostConfig"]
        assert host_config["NanoCpus"] == 500_000_000
        assert host_config["Memory"] == 128 * 1024 * 1024
        # cgroup v1 or v2, whichever this kernel gives the container.
        v2 = container.exec_run(["/probe", "cat", "/sys/fs/cgroup/cpu.max"])
        if v2.exit_code == 0:
            quota, period = v2.output.decode().split()
            memory = container.exec_run(["/probe", "cat", "/sys/fs/cgroup/memory.max"])
        else:
            quota = container.exec_run(
                ["/probe", "cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"]
            ).output.decode()
            period = container.exec_run(
                ["/probe", "cat", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"]
            ).output.decode()
            memory = container.exec_run(
                ["/probe", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
            )
        assert int(quota) / int(period) == pytest.approx(0.5)
        assert int(memory.output.decode()) == 128 * 1024 * 1024
    finally:
        container.remove(force=True)


def test_compose_style_network_and_published_port(client, probe_image: str) -> None:
    """What compose needs: a user-defined bridge with DNS by name, and a port on 127.0.0.1."""
    network = client.networks.create("onnx-study-test-net", driver="bridge")
    host_port = free_port()
    server = None
    try:
        server = client.containers.run(
            probe_image,
            ["/probe", "serve", ":8000"],
            name="onnx-study-test-server",
            network=network.name,
            ports={"8000/tcp": ("127.0.0.1", host_port)},
            detach=True,
        )
        by_name = _run(
            client,
            probe_image,
            "get",
            "http://onnx-study-test-server:8000/",
            network=network.name,
        )
        assert by_name == "pong"
        # From the host, through the published port; poll until the proxy answers.
        response = wait_until_ready(f"http://127.0.0.1:{host_port}/", timeout_s=20)
        assert response.text == "pong"
    finally:
        if server is not None:
            server.remove(force=True)
        network.remove()


def test_builds_have_no_network(client, probe_image: str, tmp_path: Path) -> None:
    """With --bridge=none, a build step cannot reach anything: image builds are offline."""
    (tmp_path / "Dockerfile").write_text(
        f'FROM {probe_image}\nRUN ["/probe", "get", "http://deb.debian.org/", "2s"]\n'
    )
    import docker.errors

    with pytest.raises(docker.errors.BuildError):
        client.images.build(
            path=str(tmp_path), tag="onnx-study-test/offline", rm=True, forcerm=True
        )


def test_a_running_engine_is_borrowed_not_stopped(
    engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    borrowed = private_engine.ensure_engine()
    assert borrowed.host == engine.host
    assert not borrowed.owned
    borrowed.stop()
    assert ping(engine.host)


def test_stop_leaves_nothing_behind(
    engine: DockerEngine, engine_dir: Path, interfaces_before: set[str], client
) -> None:
    """Runs last in this module: stop our engine and look for anything it left."""
    layout = EngineLayout.for_dir(engine_dir)
    pid = engine.pid
    # A container still running at stop time must not survive the engine.
    client.containers.run(PROBE_IMAGE, ["/probe", "serve", ":8000"], detach=True)
    assert private_engine.stop_engine(engine_dir)
    assert not private_engine._alive(pid)
    assert not layout.run_dir.exists()
    assert not ping(engine.host)
    assert private_engine._processes_under(layout.exec_root) == []
    assert private_engine._mounts_under([layout.exec_root, layout.data_root]) == []
    assert _network_interfaces() - interfaces_before == set()
    # Idempotent.
    assert not private_engine.stop_engine(engine_dir)


def test_clear_error_when_dockerd_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setattr(docker_engine, "DEFAULT_SOCKET", "unix:///nonexistent/default.sock")
    with pytest.raises(EngineUnavailable, match=r"no Docker engine answers.*dockerd.*not found"):
        private_engine.ensure_engine(tmp_path / "engine")
