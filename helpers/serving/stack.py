"""`start_stack(backend=...)`: the one door to a serving stack, whichever backend runs it.

The factory is kept apart from the protocol it returns (`helpers.serving.protocol.Stack`): it
imports the backends, and the backends import the protocol, so neither sits above the other.
The docker backend is imported only when chosen: the local one needs no Docker SDK.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers.serving.protocol import Stack

BACKENDS = ("local", "docker")


def start_stack(
    backend: str = "local",
    *,
    run_dir: Path,
    artifacts_dir: Path,
    ports: dict[str, int] | None = None,
    **options: Any,
) -> Stack:
    """Bring the three services, their limits and Prometheus up; returns when all are ready.

    `ports` overrides the defaults by name (helpers.serving.ports): a service name, "prometheus",
    and the backend's own extra names; `options` go to the backend's starter.
    """
    if backend == "local":
        from helpers.serving.local.stack import start_local_stack as starter
    elif backend == "docker":  # imported only when chosen: the local backend needs no SDK
        from helpers.serving.docker.stack import start_docker_stack as starter
    else:
        raise ValueError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    return starter(run_dir=Path(run_dir), artifacts_dir=Path(artifacts_dir), ports=ports, **options)
