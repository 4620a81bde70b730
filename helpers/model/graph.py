"""Show the ONNX graph two ways: a static SVG that survives a headless run, and Netron live.

The SVG is what the executed notebook and its HTML keep, so it is built from the model
itself: one box per operator with its key attributes, the graph's inputs and outputs with
their types and shapes, edges named by tensor. (onnx 1.23 dropped `onnx.tools.net_drawer`,
so the DOT is written here with the `graphviz` package and rendered by Graphviz's `dot`.)
Netron is the interactive view; it runs as an HTTP server thread in this process and is
stopped explicitly, on garbage collection, or at interpreter exit — whichever comes first.
"""

from __future__ import annotations

import contextlib
import html
import logging
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import graphviz
import netron
import onnx
from onnx import helper, shape_inference

from helpers.net import free_port, wait_until_ready

MAX_LISTED_VALUES = 4  # longer attribute lists (weights) are summarised by their length


def _type_text(type_proto: onnx.TypeProto) -> str:
    kind = type_proto.WhichOneof("value")
    if kind == "tensor_type":
        tensor = type_proto.tensor_type
        dtype = onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
        if not tensor.HasField("shape"):
            return dtype
        dims = [_dim_text(d) for d in tensor.shape.dim]
        return f"{dtype}[{', '.join(dims)}]" if dims else dtype
    if kind == "sequence_type":
        return f"seq({_type_text(type_proto.sequence_type.elem_type)})"
    if kind == "map_type":
        key = onnx.TensorProto.DataType.Name(type_proto.map_type.key_type).lower()
        return f"map({key}, {_type_text(type_proto.map_type.value_type)})"
    return kind or "?"


def _dim_text(dim: onnx.TensorShapeProto.Dimension) -> str:
    # Shape inference names unknown dims "unk__0", ...; a reader only needs "any size".
    if dim.HasField("dim_value"):
        return str(dim.dim_value)
    return "?" if not dim.dim_param or dim.dim_param.startswith("unk__") else dim.dim_param


def _attribute_text(attribute: onnx.AttributeProto) -> str:
    value = helper.get_attribute_value(attribute)
    if attribute.name == "to" and isinstance(value, int):  # Cast: show the type, not its code
        return onnx.TensorProto.DataType.Name(value).lower()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, onnx.TensorProto):
        return f"tensor{list(value.dims)}"
    if isinstance(value, list | tuple):
        if len(value) > MAX_LISTED_VALUES:
            return f"[{len(value)} values]"
        value = [v.decode() if isinstance(v, bytes) else v for v in value]
        return "[" + ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value) + "]"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _node_label(node: onnx.NodeProto) -> str:
    lines = [f"<b>{html.escape(node.op_type)}</b>"]
    if node.name and node.name != node.op_type:
        lines.append(f"<i>{html.escape(node.name)}</i>")
    lines += [html.escape(f"{a.name} = {_attribute_text(a)}") for a in node.attribute]
    return "<" + "<br/>".join(lines) + ">"


def to_dot(model: onnx.ModelProto) -> graphviz.Digraph:
    """A DOT graph of the model: inputs → operators → outputs, edges labelled by tensor."""
    # Types of intermediate tensors; if an ai.onnx.ml op does not infer, edges go untyped.
    with contextlib.suppress(Exception):
        model = shape_inference.infer_shapes(model)
    graph = model.graph
    types = {v.name: _type_text(v.type) for v in [*graph.value_info, *graph.input, *graph.output]}
    dot = graphviz.Digraph(graph.name or "model", graph_attr={"rankdir": "TB"})
    dot.attr("node", fontname="Helvetica", fontsize="11")
    dot.attr("edge", fontname="Helvetica", fontsize="9")
    producer: dict[str, str] = {}
    initializers = {init.name for init in graph.initializer}
    for value in graph.input:
        if value.name not in initializers:
            node_id = f"input{len(producer)}"
            dot.node(
                node_id,
                f"{value.name}\n{types[value.name]}",
                shape="ellipse",
                style="filled",
                fillcolor="#dbeafe",
            )
            producer[value.name] = node_id
    for index, node in enumerate(graph.node):
        node_id = f"op{index}"
        dot.node(
            node_id, _node_label(node), shape="box", style="rounded,filled", fillcolor="#f3f4f6"
        )
        for tensor in node.input:
            if tensor in producer:
                dot.edge(producer[tensor], node_id, label=_edge_label(tensor, types))
        for tensor in node.output:
            producer[tensor] = node_id
    for index, value in enumerate(graph.output):
        node_id = f"output{index}"
        dot.node(
            node_id,
            f"{value.name}\n{types[value.name]}",
            shape="ellipse",
            style="filled",
            fillcolor="#dcfce7",
        )
        if value.name in producer:
            dot.edge(producer[value.name], node_id)
    return dot


def _edge_label(tensor: str, types: dict[str, str]) -> str:
    return f"{tensor}\n{types[tensor]}" if tensor in types else tensor


def render_svg(model: onnx.ModelProto | Path) -> str:
    """The graph as SVG text (runs Graphviz `dot`; `make setup` installs it)."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    try:
        return to_dot(model).pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound as error:
        raise RuntimeError("Graphviz `dot` is not on PATH: run `make setup`") from error


def save_svg(model: onnx.ModelProto | Path, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_svg(model))
    return path


@contextlib.contextmanager
def _root_logging_untouched() -> Iterator[None]:
    """netron calls logging.basicConfig(INFO) when the root logger has no handler, which
    would make every library (httpx, …) chatty in the notebook; undo that."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def _stop_server(address: tuple[str, int], thread: threading.Thread | None) -> None:
    netron.stop(address)
    if thread is not None:
        thread.join(timeout=5)


class NetronViewer:
    """Netron serving one model on 127.0.0.1 at a free port, without opening a browser.

    Use as a context manager or call `stop()`; if neither happens the server is stopped
    when the viewer is garbage-collected or the kernel exits, so no server thread outlives
    the notebook.
    """

    def __init__(self, model_path: Path, host: str = "127.0.0.1") -> None:
        if not Path(model_path).exists():
            raise FileNotFoundError(f"model to view not found: {model_path}")
        self.model_path = Path(model_path)
        self.host = host
        self.url: str | None = None
        self._finalizer: weakref.finalize | None = None

    def start(self, timeout_s: float = 15.0) -> str:
        if self.url is not None:
            return self.url
        with _root_logging_untouched():
            address = netron.start(
                str(self.model_path), address=(self.host, free_port(self.host)), browse=False
            )
        thread = next(
            (t for t in threading.enumerate() if getattr(t, "address", None) == address), None
        )
        # weakref.finalize also runs at interpreter exit (atexit), covering a kernel shutdown.
        self._finalizer = weakref.finalize(self, _stop_server, address, thread)
        self.url = f"http://{address[0]}:{address[1]}/"
        wait_until_ready(self.url, timeout_s=timeout_s)
        return self.url

    def stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # idempotent: a finalizer runs at most once
        self.url = None

    @property
    def running(self) -> bool:
        return self._finalizer is not None and self._finalizer.alive

    def iframe(self, height: int = 600):
        """An IPython IFrame of the running viewer (interactive notebooks only)."""
        from IPython.display import IFrame

        return IFrame(self.start(), width="100%", height=height)

    def __enter__(self) -> NetronViewer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
