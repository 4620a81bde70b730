// Package telemetry exports the HTTP server metrics of the contract: the OpenTelemetry
// histogram http.server.request.duration (seconds) with http.request.method, http.route (the
// chi route pattern) and http.response.status_code, and service.name as a resource attribute.
// The exporter is chosen by OTEL_METRICS_EXPORTER through autoexport (prometheus: GET /metrics
// on OTEL_EXPORTER_PROMETHEUS_HOST:PORT; otlp: OTEL_EXPORTER_OTLP_*; none).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Settings are the telemetry part of config.Config.
type Settings struct {
	ServiceName    string
	Exporter       string // prometheus | otlp | console | none
	PrometheusHost string
	PrometheusPort int
}

// Telemetry owns the meter provider; Shutdown flushes and stops the exporter (and the
// Prometheus scrape server).
type Telemetry struct {
	MeterProvider metric.MeterProvider
	shutdown      func(context.Context) error
}

// Setup starts the exporter chosen by Settings.Exporter.
func Setup(ctx context.Context, s Settings) (*Telemetry, error) {
	if s.Exporter == "none" {
		return &Telemetry{MeterProvider: noop.NewMeterProvider(), shutdown: func(context.Context) error { return nil }}, nil
	}
	// autoexport reads its settings from the environment only; the contract's defaults
	// (exporter prometheus, scrape host = HOST) differ from OTel's (otlp, localhost), so the
	// resolved values are written back before it looks.
	for name, value := range map[string]string{
		"OTEL_METRICS_EXPORTER":         s.Exporter,
		"OTEL_EXPORTER_PROMETHEUS_HOST": s.PrometheusHost,
		"OTEL_EXPORTER_PROMETHEUS_PORT": fmt.Sprint(s.PrometheusPort),
	} {
		if err := os.Setenv(name, value); err != nil {
			return nil, err
		}
	}
	reader, err := autoexport.NewMetricReader(ctx)
	if err != nil {
		return nil, fmt.Errorf("starting the %s metrics exporter: %w", s.Exporter, err)
	}
	t, err := withReader(ctx, reader, s.ServiceName)
	if err != nil {
		return nil, errors.Join(err, reader.Shutdown(ctx))
	}
	return t, nil
}

func withReader(ctx context.Context, reader sdkmetric.Reader, serviceName string) (*Telemetry, error) {
	res, err := resource.New(ctx,
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", serviceName)),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("building the telemetry resource: %w", err)
	}
	provider := sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(reader),
		sdkmetric.WithResource(res),
		sdkmetric.WithView(latencyBucketsView),
	)
	return &Telemetry{MeterProvider: provider, shutdown: provider.Shutdown}, nil
}

// LatencyBucketsSeconds are the histogram boundaries fixed by services/CONTRACT.md, identical in
// all three services so their quantiles are computed alike. OTel's defaults start at 5 ms, which
// would flatten every sub-5 ms p95 to an interpolated ~4.75 ms; 25 ms is the study's objective.
var LatencyBucketsSeconds = []float64{
	0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025,
	0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

var latencyBucketsView = sdkmetric.NewView(
	sdkmetric.Instrument{Name: "http.server.request.duration"},
	sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: LatencyBucketsSeconds}},
)

// Shutdown flushes pending metrics (otlp) and stops the exporter.
func (t *Telemetry) Shutdown(ctx context.Context) error { return t.shutdown(ctx) }

// Instrument wraps the whole router. /healthz is not recorded (probes would swamp the
// histogram); traces are not collected (no-op tracer), only metrics.
func (t *Telemetry) Instrument(h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "http.server",
		otelhttp.WithMeterProvider(t.MeterProvider),
		otelhttp.WithTracerProvider(tracenoop.NewTracerProvider()),
		otelhttp.WithFilter(func(r *http.Request) bool { return r.URL.Path != "/healthz" }),
	)
}

// RouteLabel is chi middleware (installed inside the router) that adds http.route = the
// matched chi pattern to the request's metric. otelhttp wraps the router from outside, where
// the route is not known yet; chi fills the pattern in while routing, so it is read after the
// handler returns and handed over through otelhttp's Labeler. Unmatched requests (404) get no
// http.route, which keeps the label's cardinality to the real routes.
func RouteLabel(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		labeler, ok := otelhttp.LabelerFromContext(r.Context())
		if !ok {
			return
		}
		if rctx := chi.RouteContext(r.Context()); rctx != nil {
			if pattern := rctx.RoutePattern(); pattern != "" {
				labeler.Add(attribute.String("http.route", pattern))
			}
		}
	})
}
