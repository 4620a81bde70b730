"""Three repairs of what skl2onnx 1.20 emits, each for one conversion the zoo needs.

The zoo first converts every model as skl2onnx does by itself; only when that fails (or the
graph does not load in ONNX Runtime) does it convert again with the repairs below, and it
records both attempts, so a reader sees what the plain converter does with these pins.

- `imputer_in_input_type`: skl2onnx turns SimpleImputer into `ai.onnx.ml.Imputer`, which
  ONNX Runtime implements for float32 only, so a double graph does not load ("Could not find
  an implementation for Imputer(1)"). The same imputation in standard operators,
  `Where(IsNaN(x), means, x)` with the means in the input's type, loads in either.
- `ints_not_bools`: the histogram-gradient-boosting converter writes Python booleans into
  the integer attribute `nodes_missing_value_tracks_true`; protobuf 7 refuses them ("Expected
  an int, got a boolean"). The wrapper hands skl2onnx's own converter a container whose
  attributes are cast to int first.
- `double_thresholds`: for a double input, skl2onnx still stores the boosted trees'
  thresholds as float32 (`nodes_values`) and declares a float64 probability output that
  `TreeEnsembleClassifier` (always float32) does not produce, so the graph does not load. The
  repair stores the model's own float64 thresholds in `nodes_values_as_tensor` (allowed by
  ai.onnx.ml opset 3, the double-threshold form skl2onnx's tutorial on float/double
  discrepancies recommends) and declares the output it really is, float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from skl2onnx.common._registration import get_converter, get_shape_calculator
from skl2onnx.common.data_types import DoubleTensorType
from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

Converter = Callable[[Any, Any, Any], None]
TENSOR_THRESHOLDS_ML_OPSET = 3


def imputer_in_input_type(scope: Any, operator: Any, container: Any) -> None:
    """SimpleImputer (mean, NaN = missing) as Where(IsNaN(x), statistics_, x)."""
    imputer = operator.raw_operator
    double = isinstance(operator.inputs[0].type, DoubleTensorType)
    dtype, proto = (np.float64, TensorProto.DOUBLE) if double else (np.float32, TensorProto.FLOAT)
    fill = scope.get_unique_variable_name("imputed_values")
    statistics = imputer.statistics_.astype(dtype)
    container.add_initializer(fill, proto, [len(statistics)], statistics.tolist())
    source = operator.inputs[0].full_name
    missing = scope.get_unique_variable_name("missing")
    container.add_node("IsNaN", [source], [missing], name=scope.get_unique_operator_name("IsNaN"))
    container.add_node(
        "Where",
        [missing, fill, source],
        [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("Where"),
    )


def ints_not_bools(converter: Converter) -> Converter:
    """`converter`, with boolean lists in node attributes turned into int lists."""

    def convert(scope: Any, operator: Any, container: Any) -> None:
        add_node = container.add_node

        def add_node_with_ints(*args: Any, **attributes: Any) -> Any:
            for key, value in attributes.items():
                if isinstance(value, list) and any(isinstance(v, bool | np.bool_) for v in value):
                    attributes[key] = [int(v) for v in value]
            return add_node(*args, **attributes)

        container.add_node = add_node_with_ints
        try:
            converter(scope, operator, container)
        finally:
            del container.add_node  # the instance attribute; the class's method is back

    return convert


def custom_converters(model: Pipeline, input_type: str) -> tuple[dict, dict, list[str]]:
    """The converters and shape calculators to pass skl2onnx for `model`, and their names."""
    converters: dict = {}
    shapes: dict = {}
    applied: list[str] = []
    steps = [step for _, step in model.steps] if isinstance(model, Pipeline) else [model]
    if input_type == "double" and any(isinstance(step, SimpleImputer) for step in steps):
        converters[SimpleImputer] = imputer_in_input_type
        shapes[SimpleImputer] = calculate_sklearn_imputer_output_shapes
        applied.append("imputer_in_input_type")
    if any(isinstance(step, HistGradientBoostingClassifier) for step in steps):
        alias = "SklearnHistGradientBoostingClassifier"
        converters[HistGradientBoostingClassifier] = ints_not_bools(get_converter(alias))
        shapes[HistGradientBoostingClassifier] = get_shape_calculator(alias)
        applied.append("ints_not_bools")
    return converters, shapes, applied


def double_thresholds(onnx_model: onnx.ModelProto, model: Pipeline) -> bool:
    """Give a double graph of boosted trees its float64 thresholds and its real output type.

    Returns True if it changed the graph (a HistGradientBoostingClassifier with a double
    input). The thresholds are rebuilt in the order skl2onnx writes its nodes (iteration,
    class, node) and checked against what it wrote, rounded to float32, before replacing it.
    """
    estimator = model.steps[-1][1] if isinstance(model, Pipeline) else model
    graph = onnx_model.graph
    if not isinstance(estimator, HistGradientBoostingClassifier):
        return False
    if graph.input[0].type.tensor_type.elem_type != TensorProto.DOUBLE:
        return False
    node = next(n for n in graph.node if n.op_type == "TreeEnsembleClassifier")
    thresholds = np.array(
        [
            0.0 if node_["is_leaf"] else float(node_["num_threshold"])
            for iteration in estimator._predictors
            for predictor in iteration
            for node_ in predictor.nodes
        ]
    )
    written = next(a for a in node.attribute if a.name == "nodes_values")
    as_written = np.asarray(written.floats, dtype=np.float32)
    if not np.array_equal(as_written, thresholds.astype(np.float32)):
        raise RuntimeError(
            "skl2onnx wrote the boosted trees' nodes in another order than expected; "
            "the double thresholds cannot be placed (repairs.double_thresholds)"
        )
    node.attribute.remove(written)
    node.attribute.append(
        onnx.helper.make_attribute(
            "nodes_values_as_tensor", numpy_helper.from_array(thresholds, "nodes_values")
        )
    )
    # nodes_values_as_tensor exists from ai.onnx.ml opset 3 on; skl2onnx declared what its
    # own (version 1) attributes need.
    for opset in onnx_model.opset_import:
        if opset.domain == "ai.onnx.ml" and opset.version < TENSOR_THRESHOLDS_ML_OPSET:
            opset.version = TENSOR_THRESHOLDS_ML_OPSET
    produced = set(node.output)
    for output in graph.output:
        if output.name in produced and output.type.tensor_type.elem_type == TensorProto.DOUBLE:
            output.type.tensor_type.elem_type = TensorProto.FLOAT
    return True
