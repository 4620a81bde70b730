"""Waiting for things to become true, and free ports: shared by every stage of the study.

Readiness is observed, never assumed: no fixed sleeps anywhere in the study. Every wait —
a server answering, Prometheus scraping, a cgroup emptying, an engine starting — is `poll()`
with a deadline, a reason to give up early, and an error that says what was last seen.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")
EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"


class NotReady(RuntimeError):
    """Something did not happen in time, or what it waited on is gone; the message says which."""


def poll(
    check: Callable[[], T | None],
    timeout_s: float,
    what: str,
    interval_s: float = 0.05,
    gone: Callable[[], str | None] | None = None,
) -> T:
    """Call `check` until it returns something truthy; return that.

    `gone()` returning a reason (a process exited, a container stopped) ends the wait at once.
    `check` may raise NotReady("…") to say what it saw; the last such text ends up in the error.
    """
    deadline = time.monotonic() + timeout_s
    last = "nothing yet"
    while True:
        reason = gone() if gone is not None else None
        if reason:
            raise NotReady(f"{what}: {reason}")
        try:
            result = check()
            if result:
                return result
        except NotReady as seen:
            last = str(seen)
        if time.monotonic() >= deadline:
            raise NotReady(f"{what}: not after {timeout_s:.0f} s (last seen: {last})")
        time.sleep(interval_s)


def exited(process: subprocess.Popen | None) -> Callable[[], str | None]:
    """A `gone` for poll(): the reason once `process` has exited."""

    def reason() -> str | None:
        if process is not None and process.poll() is not None:
            return f"process exited with status {process.returncode}"
        return None

    return reason


def wait_until_ready(
    url: str,
    timeout_s: float = 30.0,
    process: subprocess.Popen | None = None,
    gone: Callable[[], str | None] | None = None,
) -> httpx.Response:
    """Poll `url` until it answers 2xx; fail fast if `process` exits or `gone()` says why."""

    def answer() -> httpx.Response:
        try:
            response = httpx.get(url, timeout=1.0)
        except httpx.HTTPError as error:
            raise NotReady(f"{type(error).__name__}: {error}") from None
        if not response.is_success:
            raise NotReady(f"HTTP {response.status_code}")
        return response

    stop = gone or exited(process)
    return poll(answer, timeout_s, f"{url} before ready", gone=stop)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (bind to 0, read it back, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def free_lasting_port(host: str = "127.0.0.1") -> int:
    """A free port for a server that binds it minutes from now, below the kernel's ephemeral
    range: a port from `free_port` can meanwhile become the source port of an outgoing
    connection (vegeta opens thousands), and the server's bind then fails."""
    try:
        first_ephemeral = int(Path(EPHEMERAL_RANGE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = 32768  # Linux's default
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, first_ephemeral)
        if port_free(host, port):
            return port
    raise RuntimeError(f"no free port between 20000 and {first_ephemeral} on {host}")


def port_free(host: str, port: int) -> bool:
    """True if nothing listens on host:port.

    SO_REUSEADDR, as every server binds: connections of an earlier run still in TIME_WAIT do
    not hold the port, only a listener does (without it a second run within a minute of the
    first saw its own old connections as "port already in use").
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
