"""The contract as pydantic models: what a request may contain and what a response contains.

These models *are* services/CONTRACT.md for the Python services. Requests are validated in
strict mode (no coercion: `"5.1"` and `true` are not numbers), unknown keys are forbidden (a
typo must never be silently imputed), and a feature must be a finite float32 (the ONNX model
computes in float32, so a larger number cannot mean anything to it; the pickle service uses
the same bound so the two answer alike). Absent and `null` both mean *missing*.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

FEATURE_NAMES: tuple[str, ...] = ("sepal_length", "sepal_width", "petal_length", "petal_width")
FLOAT32_MAX = 3.4028234663852886e38
MAX_BATCH = 1024
MAX_BODY_BYTES = 65536

Feature = Annotated[
    float | None,
    Field(
        default=None,
        ge=-FLOAT32_MAX,
        le=FLOAT32_MAX,
        allow_inf_nan=False,
        description="cm; a JSON number within the finite float32 range, or null = missing",
    ),
]


class Instance(BaseModel):
    """One flower. Field order is the model's column order (checked against the manifest)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    sepal_length: Feature = None
    sepal_width: Feature = None
    petal_length: Feature = None
    petal_width: Feature = None

    def row(self) -> tuple[float | None, ...]:
        return (self.sepal_length, self.sepal_width, self.petal_length, self.petal_width)


class BatchRequest(BaseModel):
    """`{"instances": [...]}` with 1..1024 instances."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    instances: Annotated[list[Instance], Field(min_length=1, max_length=MAX_BATCH)]


class Prediction(BaseModel):
    """`class_id` is the first argmax; labels and probability keys come from the manifest."""

    label: str
    class_id: int
    probabilities: dict[str, float]


class BatchResponse(BaseModel):
    predictions: list[Prediction]


class Health(BaseModel):
    """/healthz without `startup` (iris_serving.startup adds it) and `predict_stage`."""

    status: str = "ok"
    model_sha256: str
    runtime: str
    framework: str = Field(description="how the HTTP layer is written: lean | fastapi")


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = Field(default=None, description="present only where one field is to blame")


class ErrorBody(BaseModel):
    error: ErrorDetail
