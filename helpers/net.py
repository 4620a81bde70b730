"""Small network helpers shared by the stack, the graph viewer and the tests."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (bind to 0, read it back, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class NotReady(RuntimeError):
    """A server did not answer in time, or its process exited before it did."""


def wait_until_ready(
    url: str,
    timeout_s: float = 30.0,
    process: subprocess.Popen | None = None,
    poll_s: float = 0.05,
    gone: Callable[[], str | None] | None = None,
) -> httpx.Response:
    """Poll `url` until it answers 2xx; fail fast if the server is gone meanwhile.

    Gone means `process` exited, or `gone()` (e.g. a container's state) returned a reason.
    Readiness is observed, never assumed: no fixed sleeps anywhere in the study.
    """
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise NotReady(f"{url}: process exited with status {process.returncode} before ready")
        reason = gone() if gone is not None else None
        if reason:
            raise NotReady(f"{url}: {reason} before ready")
        try:
            response = httpx.get(url, timeout=1.0)
            if response.is_success:
                return response
            last_error = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            last_error = f"{type(error).__name__}: {error}"
        time.sleep(poll_s)
    raise NotReady(f"{url} not ready after {timeout_s:.0f} s ({last_error})")
