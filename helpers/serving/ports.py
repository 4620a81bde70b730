"""The one port policy of both backends: the seed's defaults, moved by compose's variables.

Named ports (the three APIs, Prometheus, Grafana) default to the seed's and move with the same
variables the compose file reads (`PYTHON_API_PKL_PORT`, `PROMETHEUS_PORT`, …), so a second
study, or a test, can run beside a stack that holds them. Every other port a backend binds
(metrics endpoints, exporter, collector) is a free one. A named port must be free — no
listener; TIME_WAIT connections of an earlier run do not count (`net.port_free`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from helpers import net

HOST = "127.0.0.1"
DEFAULTS: dict[str, int] = {
    "python-api-pkl": 5001,
    "python-api-onnx": 5002,
    "go-api-onnx": 5003,
    "prometheus": 9090,
    "grafana": 3000,
}


def variable(key: str) -> str:
    """The environment variable (compose's too) that moves the port of `key`."""
    return key.upper().replace("-", "_") + "_PORT"


def default(key: str) -> int:
    """DEFAULTS[key], moved by its variable; ValueError naming the variable if it is bad."""
    name = variable(key)
    value = os.environ.get(name, "").strip()
    if not value:
        return DEFAULTS[key]
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ValueError(f"{name}={value!r}: expected a port number 1..65535")
    return int(value)


def resolve(
    named: Iterable[str],
    free: Iterable[str] = (),
    requested: dict[str, int] | None = None,
    host: str = HOST,
) -> dict[str, int]:
    """Every port a stack binds: `named` keys get their default (or `requested`), `free` keys
    a free port (or `requested`). Raises ValueError for an unknown key, a bad or repeated
    number, or a port that something already listens on."""
    named, free = list(named), list(free)
    requested = dict(requested or {})
    known = sorted({*named, *free})
    unknown = sorted(set(requested) - set(known))
    if unknown:
        raise ValueError(f"unknown port name(s) {unknown}: expected some of {known}")
    for key, port in requested.items():
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise ValueError(f"port for {key} must be an integer 1..65535, got {port!r}")
    chosen = {key: requested.get(key) or default(key) for key in named}
    chosen |= {key: requested[key] for key in free if key in requested}
    repeated = sorted({p for p in chosen.values() if list(chosen.values()).count(p) > 1})
    if repeated:
        raise ValueError(f"the same port is given twice: {repeated} in {chosen}")
    for key, port in chosen.items():
        if not net.port_free(host, port):
            hint = f"set {variable(key)} or pass " if key in DEFAULTS else "pass "
            raise ValueError(
                f"port {port} for {key} is already in use on {host}: stop what holds it, or "
                f"{hint}ports={{{key!r}: <another port>}}"
            )
    for key in free:
        if key not in chosen:
            port = net.free_port(host)
            while port in chosen.values():
                port = net.free_port(host)
            chosen[key] = port
    return chosen
