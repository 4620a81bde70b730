"""Debian root filesystems made with debootstrap, imported as the stand-in base images.

From the Debian mirror apt uses here, `debootstrap --variant=minbase`, trimmed like the slim
official images, cached as tarballs under `.build/docker-images/` and `docker import`ed:
`onnx-study/debian:bookworm` (≈ debian:bookworm-slim), `onnx-study/python:3.11-bookworm`
(Debian's Python 3.11, `python`/`pip` on PATH and pip allowed system-wide, as in
python:3.11-slim) and `onnx-study/golang:<go>-bookworm` (gcc and libc6-dev for cgo, and this
host's Go toolchain). Each is keyed by a hash of its inputs (label `LABEL`) and skipped when the
engine already has it. The small helpers at the top are shared with `images`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from helpers import paths

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
IMAGES_DIR = paths.BUILD_DIR / "docker-images"
RECIPE_VERSION = "1"  # bump when a recipe changes: cached tarballs and images are remade
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


def run(argv: list[str], step: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-30:]
        raise ImageBuildError(
            f"{step} failed (exit {result.returncode}): {' '.join(argv)}\n" + "\n".join(output)
        )
    return result


def digest(*parts: str | bytes) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part if isinstance(part, bytes) else part.encode())
        sha.update(b"\0")
    return sha.hexdigest()[:16]


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The site of the first apt source serving `bookworm main` (`$DEBIAN_MIRROR` wins), as apt
    itself reads `apt_dir`'s one-line and deb822 files (`apt-get indextargets`)."""
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"]
    if shutil.which("apt-get") is None:
        return DEFAULT_MIRROR
    result = subprocess.run(
        ["apt-get", "--no-release-info", f"-o=Dir::Etc::sourcelist={apt_dir / 'sources.list'}",
         f"-o=Dir::Etc::sourceparts={apt_dir / 'sources.list.d'}", "indextargets",
         "--format", "$(SITE) $(RELEASE) $(COMPONENT) $(TARGET_OF)"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    for line in result.stdout.splitlines():
        if line.split()[1:] == [SUITE, "main", "deb"]:
            return line.split()[0]
    return DEFAULT_MIRROR


@dataclass(frozen=True)
class BaseImage:
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
    return run(["go", "env", "GOVERSION"], "go env GOVERSION").stdout.strip().removeprefix("go")


def base_images() -> dict[str, BaseImage]:
    go_minor = ".".join(go_version().split(".")[:2])
    plain = (f"ENV PATH={STANDARD_PATH}", "ENV LANG=C.UTF-8")
    go_env = (f"ENV PATH=/go/bin:/usr/local/go/bin:{STANDARD_PATH}", "ENV GOPATH=/go")
    return {
        "debian": BaseImage(
            "onnx-study/debian", SUITE, ("ca-certificates",), (*plain, 'CMD ["bash"]')
        ),
        "python": BaseImage(
            "onnx-study/python",
            f"3.11-{SUITE}",
            ("ca-certificates", "python3", "python3-pip", "python3-venv"),
            (*plain, 'CMD ["python3"]'),
        ),
        "golang": BaseImage(
            "onnx-study/golang",
            f"{go_minor}-{SUITE}",
            ("ca-certificates", "gcc", "libc6-dev"),
            (*go_env, "ENV LANG=C.UTF-8", "WORKDIR /go", 'CMD ["bash"]'),
            with_go_toolchain=True,
        ),
    }


def _rootfs_inputs(image: BaseImage, mirror: str) -> str:
    extra = go_version() if image.with_go_toolchain else ""
    return digest(RECIPE_VERSION, SUITE, mirror, *image.packages, extra)


def _finish_rootfs(root: Path, image: BaseImage) -> None:
    """Trim the tree to a slim image and add what the official image it stands in for has."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "usr/share/doc/*",
                    "usr/share/man/*", "usr/share/info/*"):  # fmt: skip
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    if "python3" in image.packages:
        # As in python:3.11-slim: `python` and `pip` on PATH, and pip may install system-wide
        # (inside an image no system package manager is left to protect).
        (root / "usr/local/bin/python").symlink_to("/usr/bin/python3")
        (root / "usr/local/bin/pip").symlink_to("/usr/bin/pip3")
        for marker in root.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
    if image.with_go_toolchain:
        goroot = Path(run(["go", "env", "GOROOT"], "go env GOROOT").stdout.strip())
        shutil.copytree(goroot, root / "usr/local/go", symlinks=True)
        for folder in ("go/bin", "go/src"):
            (root / folder).mkdir(parents=True, exist_ok=True)


def rootfs_tarball(image: BaseImage, mirror: str, cache_dir: Path = IMAGES_DIR) -> Path:
    """`.build/docker-images/<name>-<inputs>.tar`, made with debootstrap unless cached."""
    short_name = image.repository.rsplit("/", 1)[-1]
    tarball = cache_dir / f"{short_name}-{SUITE}-{_rootfs_inputs(image, mirror)}.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap not found; apt-get install debootstrap")
    debs = cache_dir / "debs"  # shared by the bootstraps: each .deb is fetched once
    debs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"rootfs-{short_name}-", dir=cache_dir) as tmp:
        root = Path(tmp) / "root"
        with timed(f"debootstrap {short_name} ({', '.join(image.packages)}) from {mirror}"):
            run(
                ["nice", "-n", "10", "debootstrap", "--variant=minbase",
                 f"--include={','.join(image.packages)}", f"--cache-dir={debs}", SUITE,
                 str(root), mirror],
                f"debootstrap of {image.name}",
            )  # fmt: skip
        _finish_rootfs(root, image)
        partial = tarball.with_suffix(".tar.partial")
        run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."], "tar")
        partial.rename(tarball)
    for stale in cache_dir.glob(f"{short_name}-{SUITE}-*.tar"):
        if stale != tarball:
            stale.unlink()
    return tarball


def image_inputs(client, name: str) -> str | None:
    import docker.errors

    try:
        return (client.images.get(name).labels or {}).get(LABEL)
    except docker.errors.ImageNotFound:
        return None


def import_base_image(client, image: BaseImage, mirror: str) -> str:
    inputs = _rootfs_inputs(image, mirror)
    if image_inputs(client, image.name) != inputs:
        tarball = rootfs_tarball(image, mirror)
        with timed(f"docker import {image.name}"):
            client.api.import_image_from_file(
                str(tarball),
                repository=image.repository,
                tag=image.tag,
                changes=[*image.changes, f"LABEL {LABEL}={inputs}"],
            )
    return image.name
