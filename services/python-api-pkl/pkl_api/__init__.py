"""python-api-pkl: the pickled scikit-learn pipeline behind FastAPI (services/CONTRACT.md)."""

SERVICE_NAME = "python-api-pkl"
DEFAULT_MODEL_FILE = "model.pkl"
