"""Docker Compose through its own CLI: `build`, `up`, `stop`, `down`, and `config`.

`config` is compose's own reading of the files with the run's environment, so the backend never
re-implements compose's `${VAR:-default}` interpolation: the pinned images and build args it
reports are exactly what `up` and `build` will use. `docker compose` (v2) is used when the CLI
has the plugin, else `docker-compose` (v1.29, Debian's), with `-p onnx-serving-study`.
Every command and its output are appended to the run's `stack/logs/compose.log`.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from helpers import paths

PROJECT = "onnx-serving-study"
COMPOSE_FILE = paths.REPO_ROOT / "docker-compose.yaml"
SCRAPE_OVERRIDE = paths.REPO_ROOT / "docker-compose.scrape.yaml"
PROJECT_LABEL = f"com.docker.compose.project={PROJECT}"
SERVICE_LABEL = "com.docker.compose.service"


class ComposeError(RuntimeError):
    """A compose command failed; the message has the command and the end of its output."""


def compose_command() -> list[str]:
    """`docker compose` (v2) when the CLI has the plugin, else `docker-compose` (v1)."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False, timeout=30
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise ComposeError(
        "neither `docker compose` (v2) nor `docker-compose` (v1) is installed; install Docker "
        "Compose (Debian: apt-get install docker-compose)"
    )


@dataclass
class Compose:
    """The project's compose files, run with one environment (the engine, images, ports…)."""

    env: dict[str, str]
    files: list[Path] = field(default_factory=lambda: [COMPOSE_FILE])
    log_path: Path | None = None
    command: list[str] = field(default_factory=compose_command)

    def __post_init__(self) -> None:
        self.env.pop("PYTHONPATH", None)  # Debian's docker-compose runs on the system Python

    @property
    def is_v2(self) -> bool:
        return self.command[-1] == "compose"

    def run(self, *args: str, timeout_s: float = 1800) -> str:
        """`compose -p PROJECT -f … <args>`; ComposeError with its output if it fails."""
        argv = [*self.command, "-p", PROJECT]
        for file in self.files:
            argv += ["-f", str(file)]
        argv += args
        result = subprocess.run(
            argv, capture_output=True, text=True, env=self.env, cwd=paths.REPO_ROOT,
            timeout=timeout_s, check=False,
        )  # fmt: skip
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a") as log:
                log.write(f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}\n")
        if result.returncode != 0:
            raise ComposeError(
                f"`{' '.join([*self.command, *args])}` failed (exit {result.returncode}):\n"
                + (result.stdout + result.stderr)[-3000:]
            )
        return result.stdout

    def config(self) -> dict[str, Any]:
        """The files as compose resolves them with `env` (every profile, so k6 is in it)."""
        return yaml.safe_load(self.run("--profile", "load", "config"))

    def up(self, services: list[str]) -> None:
        never_pull = ["--pull", "never"] if self.is_v2 else []  # v1 pulls only what is missing
        self.run("up", "-d", "--no-build", *never_pull, *services)

    def version(self) -> str:
        result = subprocess.run(
            [*self.command, "version"], capture_output=True, text=True, timeout=30
        )
        return (result.stdout or result.stderr).strip().splitlines()[0]
