"""Metrics: the OpenTelemetry FastAPI instrumentation feeding one of three exporters.

`OTEL_METRICS_EXPORTER` picks the exporter: `prometheus` (local backend: a scrape endpoint,
`GET /metrics` on OTEL_EXPORTER_PROMETHEUS_HOST:PORT, served by prometheus_client in a thread
of its own), `otlp` (compose: OTLP/HTTP push to the collector, configured by the standard
OTEL_EXPORTER_OTLP_* variables), or `none`. Exporter modules are imported only when chosen,
so a service does not pay memory for the one it does not use.

The instrumentation emits the stable HTTP semantic conventions only when
OTEL_SEMCONV_STABILITY_OPT_IN=http is set before it is imported; without it the histogram
would be the old `http.server.duration` in milliseconds. The contract fixes the stable name,
so the variable is defaulted here rather than trusted to every launcher.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import FastAPI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import SERVICE_NAME, Resource

from iris_serving.settings import Settings

log = logging.getLogger("iris_serving")

# Not recorded in the latency histogram (CONTRACT.md): readiness polls would dilute it.
EXCLUDED_URLS = "/healthz"
SHUTDOWN_FLUSH_MS = 3000
# The histogram boundaries fixed by services/CONTRACT.md, identical in all three services so
# their quantiles are computed alike. OTel's defaults start at 5 ms, which would flatten every
# sub-5 ms p95 to an interpolated ~4.75 ms; 25 ms is the study's latency objective.
LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025,
    0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


@dataclass
class Telemetry:
    """The meter provider and what must be started after start-up and stopped at exit."""

    provider: MeterProvider | None
    start: Callable[[], None] = field(default=lambda: None)
    stop_endpoint: Callable[[], None] = field(default=lambda: None)

    def shutdown(self) -> None:
        """Flush (otlp: a final export) and stop; called after uvicorn has drained requests."""
        if self.provider is not None:
            # Bounded: with the collector down, the OTLP exporter would retry for ~10 s and
            # outlast Docker's stop timeout; a lost last interval beats a SIGKILL.
            self.provider.shutdown(timeout_millis=SHUTDOWN_FLUSH_MS)
        self.stop_endpoint()


def instrument(settings: Settings, app: FastAPI) -> Telemetry:
    """Wire the exporter chosen by OTEL_METRICS_EXPORTER into the app; nothing is bound yet."""
    if settings.metrics_exporter == "none":
        return Telemetry(provider=None)
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    telemetry = Telemetry(provider=None)
    readers: list[MetricReader]
    if settings.metrics_exporter == "prometheus":
        import prometheus_client
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        readers = [PrometheusMetricReader()]

        def start() -> None:
            server, _thread = prometheus_client.start_http_server(
                settings.prometheus_port, addr=settings.prometheus_host
            )
            telemetry.stop_endpoint = server.shutdown
            log.info(
                "metrics at http://%s:%d/metrics",
                settings.prometheus_host,
                settings.prometheus_port,
            )

        telemetry.start = start
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        # Interval from OTEL_METRIC_EXPORT_INTERVAL (default 60 s), endpoint from
        # OTEL_EXPORTER_OTLP_ENDPOINT: the standard variables, read by the SDK.
        readers = [PeriodicExportingMetricReader(OTLPMetricExporter())]

    # Not set as the global provider: only the instrumentation below records into it.
    telemetry.provider = MeterProvider(
        metric_readers=readers,
        resource=Resource.create({SERVICE_NAME: settings.service_name}),
        views=[
            View(
                instrument_name="http.server.request.duration",
                aggregation=ExplicitBucketHistogramAggregation(LATENCY_BUCKETS_S),
            )
        ],
    )
    FastAPIInstrumentor.instrument_app(
        app, meter_provider=telemetry.provider, excluded_urls=EXCLUDED_URLS
    )
    return telemetry
