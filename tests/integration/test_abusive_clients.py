"""One client must not take a service's budget (services/CONTRACT.md, "Abusive clients").

Every service runs as a real process inside the study's budget — a real cgroup of 0.5 CPU and
128 MiB, as the local backend gives it (`service_in_budget`, skipped with the reason where
cgroups cannot be written) — and is attacked the way a client on 127.0.0.1 could:

- one 16 MiB header line in 64 KiB chunks: answered 431 or the connection closed (h11's own
  cap answers 400 and closes), the service alive and serving, no OOM kill in its cgroup
  (before: the pickle service was OOM-killed);
- headers trickled one line every 2 s (slowloris): the connection is closed once
  HTTP_READ_HEADER_TIMEOUT (5 s) has passed (before: held open by both Python services);
- a body trickled past HTTP_READ_TIMEOUT, and a client that disconnects mid-body: no 5xx in
  the latency histogram, a 499 (client abort) instead, no traceback or ERROR line in the log
  (before: a 500 and a ClientDisconnect traceback in the Python services, a 400 in Go);
- 2 000 idle connections that never send a byte: /healthz still answers, and the idle ones are
  closed by the header deadline;
- the Python services only: more requests in progress than HTTP_MAX_CONCURRENT_REQUESTS, each
  holding a nearly complete 64 KiB body, are shed with 503 and the service lives (before: it
  was OOM-killed by a few hundred of them).

Deadlines are checked with generous bounds (a multiple of the configured timeout), since the
machine is shared; what matters is that the connection is closed at all, which it never was.
"""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers.serving.services import SERVICE_NAMES

pytestmark = pytest.mark.integration

PYTHON_SERVICES = ("python-api-pkl", "python-api-onnx")
INSTANCE = b'{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}'
HEADER_TIMEOUT_S = 5  # HTTP_READ_HEADER_TIMEOUT's default, the contract's
CLOSE_BOUND = 3  # a deadline must have closed the connection within this many timeouts
IDLE_CONNECTIONS = 2000
DURATION = "http_server_request_duration_seconds"


# Every service as deployed, and the ONNX one with h11 (the original post's HTTP parser,
# UVICORN_HTTP=h11), whose head-size cap is h11's own.
VARIANTS = [(name, {}) for name in SERVICE_NAMES] + [("python-api-onnx", {"UVICORN_HTTP": "h11"})]


@pytest.fixture(
    scope="module",
    params=VARIANTS,
    ids=[name + ("-h11" if overrides else "") for name, overrides in VARIANTS],
)
def budgeted(request: pytest.FixtureRequest, service_in_budget) -> tuple[Any, Any]:
    """(service, its budget): the service with metrics on inside its own 0.5 CPU / 128 MiB
    cgroup, shared by this module's attacks on it."""
    name, overrides = request.param
    return service_in_budget(name, overrides=overrides)


def _alive_and_serving(service: Any, budget: Any) -> None:
    assert service.managed is not None and service.managed.alive(), service.managed.log_tail(30)
    response = httpx.post(
        f"{service.base_url}/predict",
        content=INSTANCE,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert budget.oom_kills() == 0, f"{service.name} had an OOM kill in its cgroup"


def _outcome(sock: socket.socket, timeout_s: float) -> str:
    """What the server did: its status line, `closed` (EOF or reset), or `open`."""
    sock.settimeout(timeout_s)
    try:
        data = sock.recv(4096)
    except TimeoutError:
        return "open"
    except ConnectionResetError:
        return "closed"
    return data.split(b"\r\n", 1)[0].decode("latin-1") if data else "closed"


def test_huge_header_is_refused_without_oom(budgeted) -> None:
    service, budget = budgeted
    port = httpx.URL(service.base_url).port
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: ")
        chunk, sent = b"a" * 65536, 0
        try:
            while sent < 16 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
            sock.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection: what it answered is still readable
        outcome = _outcome(sock, 30)
        if outcome.startswith("HTTP/1.1 400"):  # h11's own cap: uvicorn answers 400, closes
            while (rest := _outcome(sock, 30)) not in ("closed", "open"):
                pass
            outcome += f", then {rest}"
    print(f"\n{service.name}: {outcome!r} after {sent / 2**20:.2f} MiB sent")
    assert outcome.startswith("HTTP/1.1 431") or outcome.endswith("closed"), outcome
    _alive_and_serving(service, budget)


def test_trickled_headers_are_cut_off(budgeted) -> None:
    """Slowloris: a header line every 2 s. Closed after HTTP_READ_HEADER_TIMEOUT."""
    service, budget = budgeted
    port = httpx.URL(service.base_url).port
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        outcome, lines = "open", 0
        while outcome == "open" and time.monotonic() - start < CLOSE_BOUND * HEADER_TIMEOUT_S:
            outcome = _outcome(sock, 2.0)
            if outcome == "open":
                try:
                    sock.sendall(b"X-Line-%d: v\r\n" % lines)
                    lines += 1
                except (BrokenPipeError, ConnectionResetError):
                    outcome = "closed"
    held = time.monotonic() - start
    print(f"\n{service.name}: {outcome!r} after {held:.1f} s and {lines} header lines")
    assert outcome == "closed", f"still open after {held:.1f} s ({lines} lines)"
    _alive_and_serving(service, budget)


def _samples(service: Any) -> dict[tuple[str, str], float]:
    """(route, status) → requests counted in the latency histogram."""
    assert service.metrics_url
    text = httpx.get(service.metrics_url, timeout=10).text
    return {
        (s.labels.get("http_route", ""), s.labels["http_response_status_code"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == f"{DURATION}_count"
    }


def _wait_for(predicate: Callable[[], object], timeout_s: float = 10.0) -> object:
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def test_disconnect_mid_body_is_a_client_abort(budgeted) -> None:
    """100 of 1 000 announced bytes, then the client leaves: a 499 in the histogram, no 5xx,
    nothing logged as an error."""
    service, budget = budgeted
    port = httpx.URL(service.base_url).port
    before = _samples(service).get(("/predict", "499"), 0)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + b'{"sepal_length": 5.1' + b" " * 80
        )
    counted = _wait_for(lambda: _samples(service).get(("/predict", "499"), 0) > before)
    samples = _samples(service)
    assert counted, f"no 499 recorded for the abort: {samples}"
    assert not [key for key in samples if key[1].startswith("5")], samples
    log = service.managed.log_path.read_text() if service.managed else ""
    assert "Traceback" not in log and "ERROR" not in log and '"level":"ERROR"' not in log, log
    _alive_and_serving(service, budget)


@contextmanager
def _idle_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections to 127.0.0.1:port that never send a byte."""
    with ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            sockets.append(sock)
        yield sockets


def test_idle_connections_do_not_stop_healthz(budgeted) -> None:
    """2 000 connections that send nothing: /healthz answers while they are open, and the
    header deadline closes them (so they cannot pile up)."""
    service, budget = budgeted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < IDLE_CONNECTIONS + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, IDLE_CONNECTIONS + 256), hard))
    port = httpx.URL(service.base_url).port
    with _idle_connections(port, IDLE_CONNECTIONS) as sockets:
        start = time.monotonic()
        health = httpx.get(f"{service.base_url}/healthz", timeout=30)
        answered = time.monotonic() - start
        assert health.status_code == 200, health.text

        sample = sockets[:: IDLE_CONNECTIONS // 50]
        for sock in sample:
            sock.setblocking(True)

        def all_closed() -> bool:
            return all(_outcome(sock, 0.01) == "closed" for sock in sample)

        closed = _wait_for(all_closed, CLOSE_BOUND * HEADER_TIMEOUT_S)
        held = time.monotonic() - start
    print(f"\n{service.name}: /healthz answered in {answered:.2f} s with {len(sockets)} idle")
    assert closed, f"idle connections still open {held:.1f} s later"
    _alive_and_serving(service, budget)


def test_slow_body_is_cut_off_as_a_client_abort(launch_service) -> None:
    """A body one byte every 0.5 s, past HTTP_READ_TIMEOUT (2 s here): the connection is
    closed, the request counted as a 499, never a 5xx."""
    for name in SERVICE_NAMES:
        overrides = {"HTTP_READ_HEADER_TIMEOUT": "1", "HTTP_READ_TIMEOUT": "2"}
        service = launch_service(name, overrides=overrides)
        port = httpx.URL(service.base_url).port
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n{"
            )
            outcome = "open"
            while outcome == "open" and time.monotonic() - start < CLOSE_BOUND * 2:
                outcome = _outcome(sock, 0.5)
                if outcome == "open":
                    try:
                        sock.sendall(b" ")
                    except (BrokenPipeError, ConnectionResetError):
                        outcome = "closed"
        held = time.monotonic() - start
        assert outcome == "closed", f"{name}: still reading the body after {held:.1f} s"
        counted = _wait_for(lambda s=service: _samples(s).get(("/predict", "499"), 0) >= 1)
        samples = _samples(service)
        assert counted and not [k for k in samples if k[1].startswith("5")], (name, samples)


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_requests_beyond_the_cap_are_shed_not_fatal(name: str, service_in_budget) -> None:
    """400 requests each holding a nearly complete 64 KiB body (the contract's maximum):
    beyond HTTP_MAX_CONCURRENT_REQUESTS (128) they are answered 503 at once and the service
    lives inside its 128 MiB; once they are gone, it serves again."""
    service, budget = service_in_budget(name, metrics=False)
    port = httpx.URL(service.base_url).port
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 65536\r\n\r\n"
    )
    with ExitStack() as stack:
        sockets = []
        for _ in range(400):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
            sock.sendall(head + b" " * 65000)
            sockets.append(sock)
        shed = sum(_outcome(sock, 5.0).startswith("HTTP/1.1 503") for sock in sockets[-50:])
        assert shed == 50, f"only {shed} of the last 50 were shed"
        assert service.managed.alive(), service.managed.log_tail(30)
    _alive_and_serving(service, budget)
