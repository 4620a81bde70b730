"""The Docker engine the docker backend talks to: one that already runs, borrowed.

`find_running_engine()` asks `$DOCKER_HOST`, then the default socket; a borrowed engine is
never stopped. Where none runs, helpers.serving.docker.standins.private_engine starts one of
our own (`ensure_engine`) — a workaround for machines without a Docker service, fenced there.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

DEFAULT_SOCKET = "unix:///var/run/docker.sock"


class EngineUnavailable(RuntimeError):
    """No Docker engine answers and none can be started here; the message says why."""


@dataclass
class DockerEngine:
    """An engine that answers at `host` (a DOCKER_HOST URL); `owned`: we started it, and
    only then does `stop()` stop it."""

    host: str
    owned: bool

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment for docker / compose subprocesses that talks to this engine."""
        return {**(os.environ if base is None else base), "DOCKER_HOST": self.host}

    def client(self, timeout: int = 120):
        """A Docker SDK client for this engine (the caller closes it)."""
        import docker

        return docker.DockerClient(base_url=self.host, timeout=timeout)

    def info(self) -> dict:
        with contextlib.closing(self.client(timeout=10)) as client:
            return client.info()

    def stop(self) -> None:
        """A borrowed engine is left running (helpers.serving.docker.standins.private_engine's
        `OwnedEngine` stops the one it started)."""


def ping(host: str, timeout_s: float = 2.0) -> bool:
    """True when the Docker API at `host` answers `/_ping`."""
    import docker

    try:
        with contextlib.closing(docker.APIClient(base_url=host, timeout=timeout_s)) as api:
            return bool(api.ping())
    except Exception:  # DockerException, and requests' errors, which are not DockerExceptions
        return False


def find_running_engine() -> str | None:
    """The DOCKER_HOST of an engine that answers now: `$DOCKER_HOST` first, then the default."""
    candidates = [os.environ["DOCKER_HOST"]] if os.environ.get("DOCKER_HOST") else []
    return next((host for host in [*candidates, DEFAULT_SOCKET] if ping(host)), None)
