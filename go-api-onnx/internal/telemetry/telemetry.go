// Package telemetry exports the HTTP server metrics of the contract — the OpenTelemetry
// histogram http.server.request.duration (seconds) with http.request.method, http.route and
// http.response.status_code, service.name as a resource attribute — and, when asked, a span
// per request.
//
// Metrics: OTEL_METRICS_EXPORTER (exporters.go; prometheus: GET /metrics on
// OTEL_EXPORTER_PROMETHEUS_HOST:PORT; otlp: OTLP/HTTP to OTEL_EXPORTER_OTLP_*; console; none). Spans:
// OTEL_TRACES_EXPORTER=otlp, a BatchSpanProcessor exporting OTLP/HTTP (protobuf) to
// OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT every
// OTEL_BSP_SCHEDULE_DELAY, as in the original post (which used OTLP/gRPC; HTTP for the same
// reason as the Python services: services/CONTRACT.md, last section).
//
// Who records: with spans on, otelhttp (spans and the histogram, as published). With metrics
// alone, durationRecorder (recorder.go), a lean wrapper through the metric API that records
// the same histogram at a fraction of otelhttp's cost. With neither, nothing is installed.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Settings are the telemetry part of config.Config.
type Settings struct {
	ServiceName     string
	Metrics         string // prometheus | otlp | console | none
	Traces          string // none | otlp
	SpanExportDelay time.Duration
	PrometheusHost  string
	PrometheusPort  int
}

// Telemetry owns the providers; Shutdown flushes and stops the exporters (and the Prometheus
// scrape server).
type Telemetry struct {
	meters   *sdkmetric.MeterProvider // nil: metrics off
	tracer   *sdktrace.TracerProvider // nil: spans off
	shutdown []func(context.Context) error
}

// Setup starts the exporters the settings choose; with both off it starts nothing.
func Setup(ctx context.Context, s Settings) (*Telemetry, error) {
	t := &Telemetry{}
	if s.Metrics == "none" && s.Traces == "none" {
		return t, nil
	}
	res, err := newResource(ctx, s.ServiceName)
	if err != nil {
		return nil, err
	}
	if s.Metrics != "none" {
		reader, stop, err := newMetricReader(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("starting the %s metrics exporter: %w", s.Metrics, err)
		}
		t.setMeters(reader, res, s.Traces != "none")
		if stop != nil {
			t.shutdown = append(t.shutdown, stop) // after the provider's: a last scrape may come
		}
	}
	if s.Traces != "none" {
		exporter, err := otlptracehttp.New(ctx) // endpoint, headers, timeout: OTEL_EXPORTER_OTLP_*
		if err != nil {
			return nil, errors.Join(fmt.Errorf("starting the OTLP span exporter: %w", err), t.Shutdown(ctx))
		}
		t.tracer = sdktrace.NewTracerProvider(
			sdktrace.WithBatcher(exporter, sdktrace.WithBatchTimeout(s.SpanExportDelay)),
			sdktrace.WithResource(res),
		)
		t.shutdown = append(t.shutdown, t.tracer.Shutdown)
	}
	return t, nil
}

// newResource: service.name, the SDK's attributes, and a service.instance.id per process as
// the Python SDK sets by default — the collector's exporter makes it the `instance` label, so
// two instances of a service (a restart within its metric_expiration) stay separate series.
func newResource(ctx context.Context, serviceName string) (*resource.Resource, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.instance.id", uuid.NewString())),
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES (may set the instance id)
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", serviceName)),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("building the telemetry resource: %w", err)
	}
	return res, nil
}

// setMeters builds the meter provider on reader, with the contract's buckets. Without spans
// there is never a sampled span to attach an exemplar to, so exemplars are off.
func (t *Telemetry) setMeters(reader sdkmetric.Reader, res *resource.Resource, spans bool) {
	options := []sdkmetric.Option{
		sdkmetric.WithReader(reader),
		sdkmetric.WithResource(res),
		sdkmetric.WithView(latencyBucketsView),
	}
	if !spans {
		options = append(options, sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
	}
	t.meters = sdkmetric.NewMeterProvider(options...)
	t.shutdown = append(t.shutdown, t.meters.Shutdown)
}

// LatencyBucketsSeconds are the histogram boundaries fixed by services/CONTRACT.md, identical in
// all three services so their quantiles are computed alike. OTel's defaults start at 5 ms, which
// would flatten every sub-5 ms p95 to an interpolated ~4.75 ms; 25 ms is the study's objective.
var LatencyBucketsSeconds = []float64{
	0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025,
	0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

var latencyBucketsView = sdkmetric.NewView(
	sdkmetric.Instrument{Name: durationName},
	sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: LatencyBucketsSeconds}},
)

// Shutdown flushes pending spans and metrics (otlp) and stops the exporters.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var err error
	for _, stop := range t.shutdown {
		err = errors.Join(err, stop(ctx))
	}
	return err
}

// Middleware is what the router must install inside itself, where the matched route is
// known: RouteLabel when otelhttp records, nothing otherwise.
func (t *Telemetry) Middleware() []func(http.Handler) http.Handler {
	if t.tracer == nil {
		return nil
	}
	return []func(http.Handler) http.Handler{RouteLabel}
}

// Instrument wraps the whole router. /healthz is neither recorded nor traced (probes would
// swamp the histogram); routes are the router's paths, the values http.route may take.
func (t *Telemetry) Instrument(h http.Handler, routes []string) http.Handler {
	switch {
	case t.tracer != nil:
		var meters metric.MeterProvider = noop.NewMeterProvider()
		if t.meters != nil {
			meters = t.meters
		}
		return otelhttp.NewHandler(h, "http.server",
			otelhttp.WithMeterProvider(meters),
			otelhttp.WithTracerProvider(t.tracer),
			otelhttp.WithFilter(func(r *http.Request) bool { return r.URL.Path != "/healthz" }),
		)
	case t.meters != nil:
		return newDurationRecorder(h, t.meters, routes, "/healthz")
	}
	return h
}

// RouteLabel is chi middleware (installed inside the router) that names the request's span
// "METHOD route" and adds http.route = the matched chi pattern to the span and to otelhttp's
// metric. otelhttp wraps the router from outside, where the route is not known yet; chi fills
// the pattern in while routing, so it is read after the handler returns. Unmatched requests
// (404) get no http.route, which keeps the label's cardinality to the real routes.
func RouteLabel(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		rctx := chi.RouteContext(r.Context())
		if rctx == nil || rctx.RoutePattern() == "" {
			return
		}
		route := attribute.String("http.route", rctx.RoutePattern())
		if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
			span.SetName(r.Method + " " + rctx.RoutePattern())
			span.SetAttributes(route)
		}
		if labeler, ok := otelhttp.LabelerFromContext(r.Context()); ok {
			labeler.Add(route)
		}
	})
}
