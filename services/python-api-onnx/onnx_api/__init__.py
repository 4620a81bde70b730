"""python-api-onnx: the ONNX model on ONNX Runtime behind FastAPI (services/CONTRACT.md).

Neither scikit-learn nor scipy nor pandas is imported or installed: the point of the ONNX
service is to serve the pipeline without them (a test asserts on `sys.modules`).
"""

SERVICE_NAME = "python-api-onnx"
DEFAULT_MODEL_FILE = "model.onnx"
