"""Local stand-ins for the docker backend's base images: made once, cached by their inputs.

The engine is the one the docker backend uses (`.build/docker-engine`, or a running engine
that is borrowed), so the images made here are the ones the stack test builds on; they are
cached, and a second run rebuilds nothing. Cold, `prepare()` takes ~5 min on two shared cores
(three debootstraps dominate).

That the wheelhouse and the module cache are complete is proven where it matters, by the
services' own builds in test_docker_stack.py: their Dockerfiles install with `pip --no-index`
from the wheelhouse and build Go with `GOPROXY=off` from the module cache, on an engine whose
builds have no network (test_docker_engine.py::test_builds_have_no_network). Proving it again
here with separate images cost two and a half minutes of every `make test`.

Skipped, with the reason printed, only where no engine can be started.
"""

from __future__ import annotations

import contextlib
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import paths
from helpers.serving.docker import engine as docker_engine
from helpers.serving.docker.standins import images as docker_images
from helpers.serving.docker.standins import private_engine, rootfs

pytestmark = [pytest.mark.integration, pytest.mark.docker]


@pytest.fixture(scope="module")
def engine() -> Iterator[docker_engine.DockerEngine]:
    try:
        engine = private_engine.ensure_engine()
    except docker_engine.EngineUnavailable as error:
        if private_engine.why_engine_cannot_start():
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
