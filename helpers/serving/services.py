"""How each of the three services is started as a process: one place for the command lines.

Both the contract tests and the local backend start services from these specs, so a service
is launched the same way wherever it runs. Services never import `helpers`; this module only
knows their command lines and environment variables (services/CONTRACT.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from helpers import paths

SERVICE_NAMES = ("python-api-pkl", "python-api-onnx", "go-api-onnx")
# The latency histogram's boundaries (seconds) that services/CONTRACT.md fixes for all three;
# recorded with every run, so its quantiles can be recomputed later on any subset of them.
LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025,
    0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    model_file: str  # artifact name inside the artifacts dir
    argv: tuple[str, ...]
    cwd: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def environment(
        self,
        artifacts_dir: Path,
        port: int,
        metrics_port: int | None,
        host: str = "127.0.0.1",
        overrides: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """The process environment: the contract's variable names, nothing service-specific.

        metrics_port=None turns the Prometheus endpoint off (OTEL_METRICS_EXPORTER=none).
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ORT_"))}
        env.update(
            HOST=host,
            PORT=str(port),
            MODEL_PATH=str(artifacts_dir / self.model_file),
            MODEL_MANIFEST=str(artifacts_dir / "manifest.json"),
            OTEL_SERVICE_NAME=self.name,
            OTEL_METRICS_EXPORTER="prometheus" if metrics_port else "none",
            **self.extra_env,
        )
        if metrics_port:
            env.update(
                OTEL_EXPORTER_PROMETHEUS_HOST=host,
                OTEL_EXPORTER_PROMETHEUS_PORT=str(metrics_port),
            )
        env.update(overrides or {})
        return env


def _python_service(name: str, module: str, model_file: str) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        model_file=model_file,
        argv=(str(paths.service_python(name)), "-m", module),
        cwd=paths.SERVICES_DIR / name,
        # Stable HTTP semantic conventions: http.server.request.duration in seconds.
        extra_env={"OTEL_SEMCONV_STABILITY_OPT_IN": "http", "PYTHONUNBUFFERED": "1"},
    )


def _go_service() -> ServiceSpec:
    return ServiceSpec(
        name="go-api-onnx",
        model_file="model.onnx",
        argv=(str(paths.GO_SERVICE_BINARY),),
        cwd=paths.REPO_ROOT,
        extra_env={"ORT_SHARED_LIB_PATH": str(paths.ort_shared_library())},
    )


def all_services() -> dict[str, ServiceSpec]:
    """The three services in the seed's order."""
    specs = [
        _python_service("python-api-pkl", "pkl_api", "model.pkl"),
        _python_service("python-api-onnx", "onnx_api", "model.onnx"),
        _go_service(),
    ]
    return {spec.name: spec for spec in specs}
