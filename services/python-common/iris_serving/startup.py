"""Wall-clock times of a service's start-up, for cold-start measurements (CONTRACT.md).

Three moments, unix seconds, shown on /healthz as `"startup"` and in the start-up log line:

- `imports_done_unix`: the service's modules are imported — the web framework, numpy and the
  model's runtime module (onnxruntime for the ONNX service; the pickle service's scikit-learn
  is imported by unpickling, so its cost falls into the model load);
- `model_loaded_unix`: the model file is hashed, verified, loaded and has answered the start-up
  warm-up prediction (as in the Go service, whose model load includes its warm-up);
- `listening_unix`: the app and telemetry are built and the server is about to accept
  connections (the app's lifespan start-up, which uvicorn runs just before it starts
  serving on its socket).

With UVICORN_WORKERS > 1 each worker reports its own (its imports start when the worker
process does).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field


@dataclass
class StartupTimes:
    imports_done_unix: float = field(default_factory=time.time)
    model_loaded_unix: float | None = None
    listening_unix: float | None = None

    def model_loaded(self) -> None:
        self.model_loaded_unix = time.time()

    def listening(self) -> None:
        self.listening_unix = time.time()

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)

    def describe(self) -> str:
        """For the log line: `imports_done_unix=… model_loaded_unix=… listening_unix=…`."""
        return " ".join(f"{name}={value:.6f}" for name, value in asdict(self).items() if value)
