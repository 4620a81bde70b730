"""Default ports move with the compose file's variables, in both backends."""

from __future__ import annotations

import pytest

from helpers.serving.stack import port_from_environment, port_variable


def test_the_variable_is_compose_s_name() -> None:
    assert port_variable("python-api-pkl") == "PYTHON_API_PKL_PORT"
    assert port_variable("prometheus") == "PROMETHEUS_PORT"


def test_unset_keeps_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GO_API_ONNX_PORT", raising=False)
    assert port_from_environment("go-api-onnx", 5003) == 5003


def test_set_moves_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GO_API_ONNX_PORT", "15003")
    assert port_from_environment("go-api-onnx", 5003) == 15003


@pytest.mark.parametrize("value", ["abc", "0", "70000", "-1", "5003.5"])
def test_a_bad_value_is_named(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GO_API_ONNX_PORT", value)
    with pytest.raises(ValueError, match="GO_API_ONNX_PORT"):
        port_from_environment("go-api-onnx", 5003)
