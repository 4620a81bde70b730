"""An ONNX classifier on ONNX Runtime as a `Predictor`, with the session tuned for half a CPU.

Any classifier the manifest describes (logistic regression, forests, boosting, SVC, MLP,
kNN…), as long as the graph has one input of the four features and a probability output:

- input element type float32 or float64, read from the session (`tensor(float)` /
  `tensor(double)`); when the manifest describes this file (`manifest["onnx"]["serving_file"]`)
  its `input_type` ("float" | "double", default "float") must agree. Double inputs are the
  documented fix when casting to float32 flips a tree's threshold decisions.
- probabilities, either a tensor [N, n_classes] named `manifest["onnx"]["probabilities_output"]`
  (default "probabilities", skl2onnx's name with zipmap=False), or skl2onnx's ZipMap output,
  a sequence of maps {class: probability}, detected from the output's type. For ZipMap the
  service fetches *all* outputs (`session.run(None, …)`, label included), as the original post
  did, and reads each map in the manifest's label order (int keys are class ids, string keys
  are labels); the plain model fetches the probabilities tensor alone.

Session options (environment, defaults in brackets):

- `ORT_INTRA_OP_NUM_THREADS` [1]: threads one `run` may use. The service owns 0.5 CPU, and a
  request is one row of four features: a second thread has no work to share, yet it costs a
  wake-up and a join per call, and under a CFS quota every extra runnable thread spends the
  same 50 ms per 100 ms faster, so the process is throttled sooner. 0 means ONNX Runtime's
  own default (one thread per core it sees), the published configuration.
- `ORT_ALLOW_SPINNING` [0] (session config `session.intra_op.allow_spinning`): whether idle
  pool threads busy-wait for the next task. Spinning trades CPU for wake-up latency; under a
  quota the spun CPU is billed like real work and is taken from the requests. 1 = published.
- inter-op threads 1 and sequential execution: the iris graphs are short chains (imputer,
  scaler, model, post-processing) with nothing to run in parallel.

One session serves all requests: `InferenceSession.run` is thread-safe, and the handlers run
on the event loop, so calls are serialised anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
from iris_serving.artifact import VerifiedArtifact
from iris_serving.settings import ConfigError, env_int

DEFAULT_PROBABILITIES = "probabilities"  # skl2onnx's plain tensor output (zipmap=False)
INPUT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}
MANIFEST_INPUT_TYPES = {"float": "tensor(float)", "double": "tensor(double)"}


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


def _onnx_section(artifact: VerifiedArtifact) -> dict[str, Any]:
    section = artifact.manifest.get("onnx", {})
    return section if isinstance(section, dict) else {}


def _input_dtype(session: ort.InferenceSession, artifact: VerifiedArtifact) -> type[np.generic]:
    """float32 or float64, as the graph declares; checked against the manifest if it says."""
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].type not in INPUT_TYPES:
        raise ConfigError(
            f"{artifact.path} has inputs {[(i.name, i.type) for i in inputs]}; expected one "
            "input of type tensor(float) or tensor(double) with the four features"
        )
    section = _onnx_section(artifact)
    if section.get("serving_file") == artifact.path.name and "input_type" in section:
        declared = MANIFEST_INPUT_TYPES.get(section["input_type"])
        if declared != inputs[0].type:
            raise ConfigError(
                f"the manifest says onnx.input_type={section['input_type']!r} but "
                f"{artifact.path.name}'s input is {inputs[0].type}; expected them to agree"
            )
    return INPUT_TYPES[inputs[0].type]


def _zipmap_reader(
    key_type: str, labels: Sequence[str], artifact: VerifiedArtifact
) -> dict[Any, int]:
    """Map key → column in the manifest's label order: int keys are class ids 0..n-1, string
    keys must be the manifest's labels."""
    if key_type == "int64":
        return {class_id: class_id for class_id in range(len(labels))}
    if key_type == "string":
        return {label: column for column, label in enumerate(labels)}
    raise ConfigError(
        f"{artifact.path}'s ZipMap output has {key_type} keys; expected int64 class ids or "
        "string labels"
    )


class OrtPredictor:
    """Runs the session on rows of the graph's input type; returns [N, n_classes] float."""

    def __init__(
        self, session: ort.InferenceSession, settings: OrtSettings, artifact: VerifiedArtifact
    ) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self._dtype = _input_dtype(session, artifact)
        self._labels = artifact.class_labels
        outputs = session.get_outputs()
        zipmaps = [i for i, o in enumerate(outputs) if o.type.startswith("seq(map(")]
        wanted = _onnx_section(artifact).get("probabilities_output", DEFAULT_PROBABILITIES)
        self._zipmap_index: int | None = None
        if zipmaps:
            self._zipmap_index = zipmaps[0]
            key_type = outputs[zipmaps[0]].type.removeprefix("seq(map(").split(",", 1)[0]
            self._columns = _zipmap_reader(key_type, self._labels, artifact)
            self._keys_in_label_order = sorted(self._columns, key=self._columns.__getitem__)
            self._outputs: list[str] | None = None  # all of them, as the post did
            kind = f"zipmap {outputs[zipmaps[0]].name}"
            self._check_zipmap_keys(artifact)
        elif wanted in [o.name for o in outputs]:
            self._outputs = [wanted]
            kind = f"tensor {wanted}"
        else:
            raise ConfigError(
                f"{artifact.path} has outputs {[(o.name, o.type) for o in outputs]}; expected "
                f"a probabilities tensor named {wanted!r} (manifest onnx.probabilities_output) "
                "or a ZipMap sequence of maps"
            )
        self.runtime = (
            f"onnxruntime {ort.__version__} (intra_op_threads="
            f"{settings.intra_op_num_threads}, spinning={int(settings.allow_spinning)}, "
            f"input {np.dtype(self._dtype).name}, probabilities {kind})"
        )

    def predict(self, rows: np.ndarray) -> np.ndarray:
        # NaN stays NaN in either float type: the graph's imputer fills it, as in training.
        features = rows.astype(self._dtype, copy=False)
        results = self._session.run(self._outputs, {self._input: features})
        if self._zipmap_index is None:
            return results[0]
        return self._from_zipmap(results[self._zipmap_index], len(rows))

    def _check_zipmap_keys(self, artifact: VerifiedArtifact) -> None:
        """One run at start-up: the maps' keys must be exactly the manifest's classes, or
        every request would fail later."""
        probe = np.full((1, len(artifact.feature_names)), np.nan, dtype=self._dtype)
        maps = self._session.run(None, {self._input: probe})[self._zipmap_index]
        keys = set(maps[0]) if len(maps) == 1 else None
        if keys != set(self._columns):
            raise ConfigError(
                f"{artifact.path}'s ZipMap keys are {sorted(keys or ())}; expected "
                f"{sorted(self._columns)} for the manifest's labels {list(self._labels)}"
            )

    def _from_zipmap(self, maps: list[dict[Any, float]], rows: int) -> np.ndarray:
        """[N, n_classes] from one {class: probability} map per row, placed by key (the keys
        were checked at start-up: a graph's ZipMap emits the same keys for every row)."""
        if len(maps) != rows:
            raise RuntimeError(f"ZipMap output has {len(maps)} maps for {rows} rows")
        keys = self._keys_in_label_order
        return np.array([[probability_of[key] for key in keys] for probability_of in maps])


def load_predictor(artifact: VerifiedArtifact, env: Mapping[str, str]) -> OrtPredictor:
    """A CPU session on the bytes whose sha256 matched the manifest (never the path again)."""
    settings = OrtSettings.from_env(env)
    try:
        session = ort.InferenceSession(
            artifact.data, settings.session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # a matching hash with a model this runtime cannot load
        raise ConfigError(
            f"{artifact.path} matches the manifest but ONNX Runtime {ort.__version__} "
            f"cannot load it: {error}"
        ) from None
    return OrtPredictor(session, settings, artifact)
