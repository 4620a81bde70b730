"""model.onnx on ONNX Runtime as a `Predictor`, with the session tuned for half a CPU.

Session options (environment, defaults in brackets):

- `ORT_INTRA_OP_NUM_THREADS` [1]: threads one `run` may use. The service owns 0.5 CPU, and a
  request is one row of four features: a second thread has no work to share, yet it costs a
  wake-up and a join per call, and under a CFS quota every extra runnable thread spends the
  same 50 ms per 100 ms faster, so the process is throttled sooner. 0 means ONNX Runtime's
  own default (one thread per core it sees), there for the tuning study.
- `ORT_ALLOW_SPINNING` [0] (session config `session.intra_op.allow_spinning`): whether idle
  pool threads busy-wait for the next task. Spinning trades CPU for wake-up latency; under a
  quota the spun CPU is billed like real work and is taken from the requests.
- inter-op threads 1 and sequential execution: the graph is a short chain (imputer, scaler,
  linear model, softmax) with nothing to run in parallel.

One session serves all requests: `InferenceSession.run` is thread-safe, and the handlers run
on the event loop, so calls are serialised anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
from iris_serving.artifact import VerifiedArtifact
from iris_serving.settings import ConfigError, env_int

PROBABILITIES = "probabilities"  # skl2onnx's plain tensor output (zipmap=False)


@dataclass(frozen=True)
class OrtSettings:
    intra_op_num_threads: int
    allow_spinning: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OrtSettings:
        return cls(
            intra_op_num_threads=env_int(env, "ORT_INTRA_OP_NUM_THREADS", 1, 0, 64),
            allow_spinning=bool(env_int(env, "ORT_ALLOW_SPINNING", 0, 0, 1)),
        )

    def session_options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if self.allow_spinning else "0"
        )
        return options


class OrtPredictor:
    """Runs the session on float32 rows and returns the `probabilities` output."""

    def __init__(self, session: ort.InferenceSession, settings: OrtSettings) -> None:
        inputs = session.get_inputs()
        outputs = [output.name for output in session.get_outputs()]
        if len(inputs) != 1 or PROBABILITIES not in outputs:
            raise ConfigError(
                f"the ONNX model has inputs {[i.name for i in inputs]} and outputs {outputs}; "
                f"expected one input and a '{PROBABILITIES}' tensor output (zipmap=False)"
            )
        self._session = session
        self._input = inputs[0].name
        self._outputs = [PROBABILITIES]
        self.runtime = (
            f"onnxruntime {ort.__version__} (intra_op_threads="
            f"{settings.intra_op_num_threads}, spinning={int(settings.allow_spinning)})"
        )

    def predict(self, rows: np.ndarray) -> np.ndarray:
        # The model's input is float32 (the converter's FloatTensorType); NaN stays NaN.
        features = rows.astype(np.float32, copy=False)
        return self._session.run(self._outputs, {self._input: features})[0]


def load_predictor(artifact: VerifiedArtifact, env: Mapping[str, str]) -> OrtPredictor:
    """A CPU session on a file whose sha256 already matched the manifest."""
    settings = OrtSettings.from_env(env)
    try:
        session = ort.InferenceSession(
            str(artifact.path), settings.session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # a matching hash with a model this runtime cannot load
        raise ConfigError(
            f"{artifact.path} matches the manifest but ONNX Runtime {ort.__version__} "
            f"cannot load it: {error}"
        ) from None
    return OrtPredictor(session, settings)
