"""helpers.model.graph: the static SVG shows the real graph; Netron starts, answers and stops."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import onnx
import pytest

from helpers.model import graph


@pytest.mark.parametrize("name", ["model.onnx", "model_zipmap.onnx"])
def test_svg_shows_every_operator_and_the_io_types(model_artifacts: Path, name: str) -> None:
    model = onnx.load(str(model_artifacts / name))
    svg = graph.render_svg(model_artifacts / name)
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
    for node in model.graph.node:
        assert node.op_type in svg
    assert "float_input" in svg and "float[?, 4]" in svg
    for output in model.graph.output:
        assert output.name in svg
    assert "coefficients = [12 values]" in svg  # key attributes, long ones summarised


def test_zipmap_output_type_is_spelled_out(model_artifacts: Path) -> None:
    svg = graph.render_svg(model_artifacts / "model_zipmap.onnx")
    assert "seq(map(int64, float))" in svg


def test_save_svg_writes_the_file(model_artifacts: Path, tmp_path: Path) -> None:
    path = graph.save_svg(model_artifacts / "model.onnx", tmp_path / "run" / "graph.svg")
    assert "LinearClassifier" in path.read_text()


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def test_netron_starts_answers_and_stops(model_artifacts: Path) -> None:
    threads_before = set(threading.enumerate())
    viewer = graph.NetronViewer(model_artifacts / "model.onnx")
    url = viewer.start()  # returns only once the server answered HTTP 200
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    assert host == "127.0.0.1" and _port_open(host, int(port))
    assert viewer.running
    viewer.stop()
    assert not viewer.running
    assert not _port_open(host, int(port))
    assert set(threading.enumerate()) <= threads_before  # no server thread left behind
    viewer.stop()  # idempotent


def test_netron_context_manager_stops_on_exit(model_artifacts: Path) -> None:
    with graph.NetronViewer(model_artifacts / "model_zipmap.onnx") as viewer:
        port = int(viewer.url.rstrip("/").rsplit(":", 1)[1])
        assert _port_open("127.0.0.1", port)
    assert not _port_open("127.0.0.1", port)


def test_netron_refuses_a_missing_model(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.onnx"):
        graph.NetronViewer(tmp_path / "nope.onnx")
