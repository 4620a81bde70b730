"""The one port policy of both backends: defaults moved by compose's variables, free ports
for the rest, and a port held by an earlier run's TIME_WAIT connections is not "in use"."""

from __future__ import annotations

import socket

import pytest

from helpers import net
from helpers.serving import ports


def test_the_variable_is_compose_s_name() -> None:
    assert ports.variable("python-api-pkl") == "PYTHON_API_PKL_PORT"
    assert ports.variable("prometheus") == "PROMETHEUS_PORT"


def test_unset_keeps_the_default_and_set_moves_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GO_API_ONNX_PORT", raising=False)
    assert ports.default("go-api-onnx") == 5003
    monkeypatch.setenv("GO_API_ONNX_PORT", "15003")
    assert ports.default("go-api-onnx") == 15003


@pytest.mark.parametrize("value", ["abc", "0", "70000", "-1", "5003.5"])
def test_a_bad_value_is_named(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GO_API_ONNX_PORT", value)
    with pytest.raises(ValueError, match="GO_API_ONNX_PORT"):
        ports.default("go-api-onnx")


def test_resolve_names_unknown_keys_repeats_and_bad_numbers() -> None:
    with pytest.raises(ValueError, match="unknown port name"):
        ports.resolve(named=["prometheus"], requested={"grafna": 3000})
    with pytest.raises(ValueError, match="given twice"):
        ports.resolve(named=["prometheus"], free=["x"], requested={"prometheus": 1234, "x": 1234})
    with pytest.raises(ValueError, match="integer"):
        ports.resolve(named=["prometheus"], requested={"prometheus": "9090"})  # type: ignore[dict-item]


def test_free_keys_get_distinct_free_ports() -> None:
    chosen = ports.resolve(named=[], free=["a", "b", "c"])
    assert len(set(chosen.values())) == 3
    assert all(net.port_free(ports.HOST, port) for port in chosen.values())


def test_a_listener_is_in_use_but_time_wait_is_not() -> None:
    """The defect: a second run within a minute saw the first run's TIME_WAIT as a listener."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((ports.HOST, 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(ValueError, match=f"port {port} for prometheus is already in use"):
            ports.resolve(named=["prometheus"], requested={"prometheus": port})
        client = socket.create_connection((ports.HOST, port))
        server_side, _ = listener.accept()
        server_side.close()  # the server closes first: its side of the connection is TIME_WAIT
        client.close()
    assert ports.resolve(named=["prometheus"], requested={"prometheus": port}) == {
        "prometheus": port
    }
