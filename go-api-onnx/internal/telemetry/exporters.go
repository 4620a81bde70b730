package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// newMetricReader builds the reader for one OTEL_METRICS_EXPORTER value, as the contrib
// autoexport package does for the same names, but links only these three exporters: autoexport
// registers every exporter it knows (OTLP/gRPC, log and span exporters among them) in its
// init, so importing it linked gRPC into a binary that never speaks it. OTLP is OTLP/HTTP
// (protobuf) only; config rejects OTEL_EXPORTER_OTLP_PROTOCOL=grpc with exit 2.
//
// The meter provider shuts the reader down; the returned stop (nil but for prometheus) closes
// what the reader does not own, the scrape server.
func newMetricReader(ctx context.Context, s Settings) (sdkmetric.Reader, func(context.Context) error, error) {
	switch s.Metrics {
	case "prometheus":
		return newPrometheusReader(s.PrometheusHost, s.PrometheusPort)
	case "otlp":
		// Endpoint, headers, timeout: OTEL_EXPORTER_OTLP_*; interval: OTEL_METRIC_EXPORT_INTERVAL.
		exporter, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return nil, nil, err
		}
		return sdkmetric.NewPeriodicReader(exporter), nil, nil
	case "console":
		exporter, err := stdoutmetric.New()
		if err != nil {
			return nil, nil, err
		}
		return sdkmetric.NewPeriodicReader(exporter), nil, nil
	}
	return nil, nil, fmt.Errorf("OTEL_METRICS_EXPORTER=%q has no exporter in this binary", s.Metrics)
}

// newPrometheusReader serves GET /metrics on host:port from a registry of its own (no Go
// runtime collectors: only what the contract names), with autoexport's server timeouts.
func newPrometheusReader(host string, port int) (sdkmetric.Reader, func(context.Context) error, error) {
	registry := prometheus.NewRegistry()
	reader, err := promexporter.New(promexporter.WithRegisterer(registry))
	if err != nil {
		return nil, nil, err
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	listener, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, nil, errors.Join(
			fmt.Errorf("binding address %s for Prometheus exporter: %w", addr, err),
			reader.Shutdown(context.Background()),
		)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{Registry: registry}))
	server := &http.Server{
		Handler:      mux,
		ReadTimeout:  5 * time.Second,
		WriteTimeout: 10 * time.Second,
		IdleTimeout:  120 * time.Second,
	}
	go func() {
		if err := server.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			otel.Handle(fmt.Errorf("the Prometheus HTTP server exited unexpectedly: %w", err))
		}
	}()
	return reader, server.Shutdown, nil
}
