"""The hashed lock files still say what their sources declare, and what is installed is them.

`make setup` installs .venv and each service's environment from a lock (`pip --require-hashes`)
and the images install from the same locks, so a dependency changed in pyproject.toml or a
requirements.txt without `make lock` would go unnoticed: the old lock still installs. These
tests read the locks as pip does (a pin and its hashes per package) and compare them with
their sources, with each other (the services resolve under the study's lock) and with the
installed environments; the Go image's ONNX Runtime wheel must carry a hash the lock lists.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from helpers import paths

SERVICES = ("python-api-pkl", "python-api-onnx")
STUDY_LOCK = paths.REPO_ROOT / "requirements.lock"
COMMON = paths.SERVICES_DIR / "python-common" / "pyproject.toml"
GO_DOCKERFILE = paths.REPO_ROOT / "go-api-onnx" / "build" / "Dockerfile"
# What the locks are made for (Makefile: LOCK_FLAGS): CPython 3.11 on x86_64 Linux.
TARGET = {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux"}


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: frozenset[str]


def read_lock(path: Path) -> dict[str, Pin]:
    """name → pin of a `pip install -r` file whose every line is `name==version --hash=…`."""
    pins: dict[str, Pin] = {}
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *found = line.split("--hash=")
        hashes = frozenset(h.strip() for h in found)
        parsed = Requirement(requirement.strip())
        [spec] = parsed.specifier
        assert spec.operator == "==", f"{path.name}: {line[:60]} is not an exact pin"
        if parsed.marker is None or parsed.marker.evaluate(TARGET):
            pins[canonicalize_name(parsed.name)] = Pin(spec.version, hashes)
    return pins


def _pyproject(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def _build_tools(pyproject: dict) -> list[str]:
    """The build backend that `pip install --no-build-isolation` needs, and pip itself."""
    return ["pip", *pyproject["build-system"]["requires"]]


def _sources(lock: Path) -> list[str]:
    """The requirements `make lock` compiles `lock` from."""
    if lock == STUDY_LOCK:
        project = _pyproject(paths.REPO_ROOT / "pyproject.toml")
        declared = project["project"]["dependencies"]
        return declared + project["project"]["optional-dependencies"]["dev"] + _build_tools(project)
    common = _pyproject(COMMON)
    pinned = [
        line.split("#", 1)[0].strip()
        for line in (lock.parent / "requirements.txt").read_text().splitlines()
    ]
    return [p for p in pinned if p] + common["project"]["dependencies"] + _build_tools(common)


LOCKS = [STUDY_LOCK, *(paths.SERVICES_DIR / s / "requirements.lock" for s in SERVICES)]


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: str(p.relative_to(paths.REPO_ROOT)))
def test_every_source_requirement_is_pinned_in_the_lock_with_hashes(lock: Path) -> None:
    pins = read_lock(lock)
    assert all(pin.hashes for pin in pins.values()), f"{lock.name}: a pin without --hash"
    stale = []
    for line in _sources(lock):
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(TARGET):
            continue
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None or not requirement.specifier.contains(pin.version, prereleases=True):
            stale.append(f"{line} (lock: {pin.version if pin else 'absent'})")
    assert not stale, f"{lock} does not satisfy {stale}: run `make lock`"


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_runs_the_study_s_builds_of_what_both_install(service: str) -> None:
    """numpy, scikit-learn, scipy, onnxruntime… at the versions the model was made with."""
    study = read_lock(STUDY_LOCK)
    own = read_lock(paths.SERVICES_DIR / service / "requirements.lock")
    differ = {n: (p.version, study[n].version) for n, p in own.items() if n in study}
    differ = {n: v for n, v in differ.items() if v[0] != v[1]}
    assert not differ, f"{service}: (service, study) versions differ: {differ}"
    assert {"numpy", "onnxruntime" if "onnx" in service else "scikit-learn"} <= own.keys()


def _installed(python: Path) -> dict[str, str]:
    listing = (
        "import json, importlib.metadata as m;"
        "print(json.dumps({d.name: d.version for d in m.distributions()}))"
    )
    out = subprocess.run([str(python), "-c", listing], capture_output=True, text=True, check=True)
    return {canonicalize_name(k): v for k, v in json.loads(out.stdout).items()}


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: str(p.relative_to(paths.REPO_ROOT)))
def test_the_environment_holds_every_pin_of_its_lock(lock: Path) -> None:
    """An environment older than its lock means `make setup` has not run since `make lock`."""
    if lock == STUDY_LOCK:
        installed = {canonicalize_name(d.name): d.version for d in metadata.distributions()}
    else:
        python = paths.service_python(lock.parent.name)
        assert python.exists(), f"{python} missing: run `make setup`"
        installed = _installed(python)
    wrong = {
        name: (pin.version, installed.get(name))
        for name, pin in read_lock(lock).items()
        if installed.get(name) != pin.version
    }
    assert not wrong, f"(locked, installed) differ: {wrong}; run `make setup`"


def test_the_go_image_checks_the_onnxruntime_wheel_the_lock_lists() -> None:
    args = dict(re.findall(r"^ARG (ORT_\w+)=(\S+)$", GO_DOCKERFILE.read_text(), re.MULTILINE))
    pin = read_lock(paths.SERVICES_DIR / "python-api-onnx" / "requirements.lock")["onnxruntime"]
    assert args["ORT_VERSION"] == pin.version
    assert args["ORT_WHEEL"].startswith(f"onnxruntime-{pin.version}-")
    assert f"sha256:{args['ORT_WHEEL_SHA256']}" in pin.hashes
