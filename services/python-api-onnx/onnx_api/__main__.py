"""`python -m onnx_api`: serve model.onnx; configuration from the environment (CONTRACT.md)."""

from iris_serving.server import main

from onnx_api import DEFAULT_MODEL_FILE, SERVICE_NAME
from onnx_api.model import load_predictor

if __name__ == "__main__":
    raise SystemExit(main(SERVICE_NAME, DEFAULT_MODEL_FILE, load_predictor))
