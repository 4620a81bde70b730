"""`make lab` starts JupyterLab on the notebooks — also as root, as on these machines and CI
(Jupyter refuses root without --allow-root, which the Makefile passes only then)."""

from __future__ import annotations

import os
import signal
import subprocess

import httpx
import pytest

from helpers import net, paths

pytestmark = pytest.mark.integration


def test_make_lab_serves_the_notebooks(tmp_path) -> None:
    port = net.free_port()
    args = f"--no-browser --port={port} --ServerApp.ip=127.0.0.1 --IdentityProvider.token="
    lab = subprocess.Popen(
        ["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"],
        cwd=paths.REPO_ROOT,
        env={
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(tmp_path),
            "JUPYTER_CONFIG_DIR": str(tmp_path),
        },
        stdout=(tmp_path / "lab.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        net.wait_until_ready(f"http://127.0.0.1:{port}/api/status", 120, process=lab)
        contents = httpx.get(f"http://127.0.0.1:{port}/api/contents", timeout=10).json()
        names = {item["name"] for item in contents["content"]}
        assert {"04_load_test.ipynb", "05_analyze.ipynb"} <= names
    except net.NotReady as error:
        pytest.fail(f"{error}\n{(tmp_path / 'lab.log').read_text()[-2000:]}")
    finally:
        if lab.poll() is None:
            os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(timeout=30)
