"""The services declare what they import, and import what they declare (deptry).

The study package's own check is `make lint` (`deptry .`, configured in pyproject.toml). The
services are checked here against their own declarations: python-common against its
pyproject.toml, and each service's requirements.txt (which pins the whole environment)
against its code plus python-common's. deptry maps a distribution to the modules it provides
through installed metadata, so it reads the service's own environment (opentelemetry-sdk
provides `opentelemetry`, which a name guess would miss); that environment goes at the end
of sys.path, after deptry's own packages.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import paths

RUN_DEPTRY = "import sys; sys.path.append(sys.argv.pop(1)); from deptry.cli import deptry; deptry()"
# uvicorn loads both by name (loop="uvloop", http="httptools"): declared, never imported.
LOADED_BY_NAME = "DEP002=uvloop|httptools"


def _site_packages(service: str) -> str:
    python = paths.service_python(service)
    assert python.exists(), f"{python} missing: run `make setup`"
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    done = subprocess.run([str(python), "-c", where], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _deptry(service: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", RUN_DEPTRY, _site_packages(service), *args, "--no-ansi"]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_python_common_declares_what_it_imports() -> None:
    done = _deptry("python-api-onnx", paths.SERVICES_DIR / "python-common", ".")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("service", ["python-api-pkl", "python-api-onnx"])
def test_a_service_s_requirements_match_what_its_process_imports(service: str) -> None:
    done = _deptry(
        service,
        paths.SERVICES_DIR,
        service,
        "python-common",
        "--requirements-files",
        f"{service}/requirements.txt",
        "--per-rule-ignores",
        LOADED_BY_NAME,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Scanning" in done.stderr + done.stdout  # it did look at the code
