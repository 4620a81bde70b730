"""Local base images, the wheelhouse and the Go module cache, proven by offline image builds.

The engine is the one the docker backend uses (`.build/docker-engine`, or a running engine
that is borrowed), so the images made here are the ones the stack test builds on; they are
cached, and a second run rebuilds nothing. Cold, `prepare()` takes ~5 min on two shared cores
(three debootstraps dominate).

Every build here runs with no network at all: the proof that an image builds from the
wheelhouse / module cache alone, not from a registry that happens to be reachable.

Skipped, with the reason printed, only where no engine can be started.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import paths
from helpers.serving.docker import engine as docker_engine
from helpers.serving.docker import images as docker_images
from helpers.serving.docker import rootfs

pytestmark = [pytest.mark.integration, pytest.mark.docker]


@pytest.fixture(scope="module")
def engine() -> Iterator[docker_engine.DockerEngine]:
    try:
        engine = docker_engine.ensure_engine()
    except docker_engine.EngineUnavailable as error:
        if docker_engine.why_engine_cannot_start():
            pytest.skip(str(error))
        raise
    try:
        yield engine
    finally:
        engine.stop()  # only if we started it


@pytest.fixture(scope="module")
def client(engine: docker_engine.DockerEngine):
    with contextlib.closing(engine.client(timeout=900)) as client:
        yield client


@pytest.fixture(scope="module")
def images(client) -> dict[str, str]:
    started = time.monotonic()
    env = docker_images.prepare(client)
    print(f"prepare(): {time.monotonic() - started:.1f} s")
    return env


def _run(client, image: str, command: list[str], **kwargs) -> str:
    return client.containers.run(image, command, remove=True, **kwargs).decode().strip()


def test_debian_mirror_from_either_apt_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        textwrap.dedent(
            """\
            Types: deb
            # a comment
            URIs: http://mirror.example/debian
            Suites: bookworm bookworm-updates
            Components: main
            Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

            Types: deb
            URIs: http://security.example/debian-security
            Suites: bookworm-security
            Components: main
            """
        )
    )
    assert rootfs.debian_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text(
        "deb [signed-by=/k.gpg] http://list.example/debian bookworm main contrib\n"
    )
    assert rootfs.debian_mirror(tmp_path) == "http://list.example/debian"
    monkeypatch.setenv("DEBIAN_MIRROR", "http://override.example/debian")
    assert rootfs.debian_mirror(tmp_path) == "http://override.example/debian"


def test_prepare_makes_every_image_the_compose_file_needs(client, images: dict[str, str]) -> None:
    assert set(images) == set(docker_images.COMPOSE_IMAGE_VARIABLES)
    compose = (paths.REPO_ROOT / "docker-compose.yaml").read_text()
    for variable, image in images.items():
        assert f"${{{variable}:-" in compose, f"docker-compose.yaml does not use {variable}"
        client.images.get(image)  # raises if missing


def test_the_stand_ins_behave_like_the_official_images(client, images: dict[str, str]) -> None:
    python = images["PYTHON_IMAGE"]
    assert _run(client, python, ["python", "--version"]).startswith("Python 3.11.")
    assert "python 3.11" in _run(client, python, ["pip", "--version"])
    assert _run(client, python, ["python", "-m", "venv", "/tmp/venv"]) == ""
    go = _run(client, images["GO_IMAGE"], ["go", "version"])
    assert f"go{rootfs.go_version()} " in go
    assert "gcc" in _run(client, images["GO_IMAGE"], ["gcc", "--version"])
    prometheus = client.containers.run(
        images["PROMETHEUS_IMAGE"], ["--version"], remove=True, stderr=True
    ).decode()
    assert "prometheus, version" in prometheus
    assert "k6 v" in _run(client, images["K6_IMAGE"], ["version"])
    user = client.api.inspect_image(images["PROMETHEUS_IMAGE"])["Config"]["User"]
    assert user == "65534"  # nobody, as in prom/prometheus


def test_a_second_prepare_rebuilds_nothing(client, images: dict[str, str]) -> None:
    """Everything is keyed by its inputs: the same inputs give the very same images."""
    ids = {variable: client.images.get(image).id for variable, image in images.items()}
    again = docker_images.prepare(client)
    assert again == images
    assert {variable: client.images.get(image).id for variable, image in again.items()} == ids


def _build(client, context: Path, tag: str, buildargs: dict[str, str]) -> None:
    import docker.errors

    try:
        client.images.build(
            path=str(context),
            tag=tag,
            buildargs=buildargs,
            network_mode="none",
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as error:
        log = "".join(str(c.get("stream") or c.get("error") or "") for c in error.build_log)
        pytest.fail(f"build of {tag} failed: {error}\n{log[-4000:]}")


def test_python_packages_install_offline_from_the_wheelhouse(
    client, images: dict[str, str], tmp_path: Path
) -> None:
    """The services' own requirements, with --no-index: every wheel must be in the wheelhouse."""
    wheelhouse = docker_images.build_wheelhouse()
    context = tmp_path / "context"
    context.mkdir()
    subprocess.run(["cp", "-al", str(wheelhouse), str(context / "wheelhouse")], check=True)
    for service in docker_images.PYTHON_SERVICES:
        requirements = paths.SERVICES_DIR / service / "requirements.txt"
        (context / f"{service}.txt").write_bytes(requirements.read_bytes())
    (context / "Dockerfile").write_text(
        textwrap.dedent(
            """\
            ARG PYTHON_IMAGE
            FROM ${PYTHON_IMAGE}
            COPY . /src
            RUN python -m venv /pkl && /pkl/bin/pip install --no-index \\
                  --find-links /src/wheelhouse -r /src/python-api-pkl.txt \\
             && /pkl/bin/python -c "import sklearn, fastapi, uvicorn"
            RUN python -m venv /onnx && /onnx/bin/pip install --no-index \\
                  --find-links /src/wheelhouse -r /src/python-api-onnx.txt \\
             && /onnx/bin/python -c "import onnxruntime, fastapi, uvicorn"
            """
        )
    )
    _build(
        client,
        context,
        "onnx-study-test/wheelhouse-proof",
        {"PYTHON_IMAGE": images["PYTHON_IMAGE"]},
    )
    out = _run(
        client,
        "onnx-study-test/wheelhouse-proof",
        ["/onnx/bin/python", "-c", "import onnxruntime; print(onnxruntime.__version__)"],
    )
    pinned = re.search(
        r"^onnxruntime==(\S+)",
        (paths.SERVICES_DIR / "python-api-onnx" / "requirements.txt").read_text(),
        re.MULTILINE,
    )
    assert pinned and out == pinned.group(1)


def test_go_builds_offline_from_the_module_cache(
    client, images: dict[str, str], tmp_path: Path
) -> None:
    """A cgo program using a module of the service's graph builds with GOPROXY=off."""
    context = tmp_path / "context"
    (context / "cmd" / "probe").mkdir(parents=True)
    for name in ("go.mod", "go.sum"):
        (context / name).write_bytes((docker_images.GO_MODULE_DIR / name).read_bytes())
    (context / "cmd" / "probe" / "main.go").write_text(
        textwrap.dedent(
            """\
            package main

            // int answer(void) { return 42; }
            import "C"

            import (
            \t"fmt"

            \t"github.com/go-chi/chi/v5"
            )

            func main() { fmt.Println(chi.NewRouter() != nil, C.answer()) }
            """
        )
    )
    (context / "Dockerfile").write_text(
        textwrap.dedent(
            """\
            ARG GO_IMAGE
            ARG DEBIAN_IMAGE
            FROM ${GO_IMAGE} AS build
            WORKDIR /src
            COPY go.mod go.sum ./
            RUN go mod download
            COPY . .
            RUN CGO_ENABLED=1 go build -trimpath -o /out/probe ./cmd/probe
            FROM ${DEBIAN_IMAGE}
            COPY --from=build /out/probe /usr/local/bin/probe
            """
        )
    )
    _build(
        client,
        context,
        "onnx-study-test/gomodcache-proof",
        {"GO_IMAGE": images["GO_IMAGE"], "DEBIAN_IMAGE": images["DEBIAN_IMAGE"]},
    )
    assert _run(client, "onnx-study-test/gomodcache-proof", ["probe"]) == "true 42"
