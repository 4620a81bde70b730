"""Convert the fitted pipeline to ONNX with skl2onnx: two files, one for serving.

- model.onnx: `zipmap=False`, outputs `label` (int64) and `probabilities` (float32 [N, 3]);
  what the three services run.
- model_zipmap.onnx: the seed's exact output, `label` plus a sequence of maps
  {class_id: probability} — the shape the original post had to decode in Go.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
from sklearn.pipeline import Pipeline

from helpers.model import manifest as manifest_io

INPUT_NAME = "float_input"
PROBABILITIES_OUTPUT = "probabilities"  # skl2onnx's name for the tensor output (zipmap=False)
# The graph's input element type: "float" (float32, the seed's) or "double" (float64), the names
# the manifest's `onnx.input_type` uses, and the input name skl2onnx's examples give each.
INPUT_TYPES = {"float": FloatTensorType, "double": DoubleTensorType}
INPUT_NAMES = {"float": INPUT_NAME, "double": "double_input"}
# The newest opset both skl2onnx 1.20 emits and onnxruntime 1.31 runs.
TARGET_OPSET = 21
ML_OPSET = 3


def to_onnx_model(
    model: Pipeline,
    zipmap: bool,
    input_type: str = "float",
    converters: dict | None = None,
    shape_calculators: dict | None = None,
) -> onnx.ModelProto:
    """skl2onnx's graph of the pipeline, input `float_input` float32 [N, n_features] by default.

    `input_type="double"` declares a float64 input instead; `converters` / `shape_calculators`
    ({estimator class: function}) replace skl2onnx's own for this one conversion only.
    """
    if input_type not in INPUT_TYPES:
        raise ValueError(f"input_type must be one of {sorted(INPUT_TYPES)}, got {input_type!r}")
    estimator = model.steps[-1][1] if isinstance(model, Pipeline) else model
    tensor_type = INPUT_TYPES[input_type]
    return convert_sklearn(
        model,
        initial_types=[(INPUT_NAMES[input_type], tensor_type([None, model.n_features_in_]))],
        options={id(estimator): {"zipmap": zipmap}},
        target_opset={"": TARGET_OPSET, "ai.onnx.ml": ML_OPSET},
        custom_conversion_functions=converters or None,
        custom_shape_calculators=shape_calculators or None,
    )


def convert(model: Pipeline, artifacts_dir: Path) -> dict[str, Path]:
    """Write both ONNX files, check them with onnx.checker, hash them into the manifest."""
    paths = {"plain": artifacts_dir / "model.onnx", "zipmap": artifacts_dir / "model_zipmap.onnx"}
    for kind, path in paths.items():
        onnx_model = to_onnx_model(model, zipmap=(kind == "zipmap"))
        onnx.checker.check_model(onnx_model, full_check=True)
        onnx.save(onnx_model, path)
    manifest_io.record_artifacts(
        artifacts_dir / manifest_io.MANIFEST_NAME,
        *paths.values(),
        onnx={
            "input_name": INPUT_NAME,
            "target_opset": TARGET_OPSET,
            "ml_opset": ML_OPSET,
            "serving_file": paths["plain"].name,
            "zipmap_file": paths["zipmap"].name,
            "outputs": {"label": "int64 [N]", "probabilities": "float32 [N, n_classes]"},
            "probabilities_output": PROBABILITIES_OUTPUT,
            "input_type": "float",
        },
    )
    return paths


def load_session(model: Path | bytes, intra_op_threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime session on the CPU, one intra-op thread unless told otherwise.

    One thread is what a single-row request can use and what a 0.5-CPU service gets, so
    parity checks and the microbenchmark measure the runtime the services run.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
