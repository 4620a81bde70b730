// Package config reads the service's settings from the environment, with the defaults and
// names fixed by services/CONTRACT.md, and rejects invalid values before anything is loaded
// or bound.
package config

import (
	"fmt"
	"strconv"
	"strings"
)

// ServiceName is the default OTEL_SERVICE_NAME.
const ServiceName = "go-api-onnx"

// Config is every setting the service reads; nothing else is read from the environment except
// by the OpenTelemetry exporters themselves (OTEL_EXPORTER_OTLP_*, OTEL_METRIC_EXPORT_INTERVAL).
type Config struct {
	Host         string // HOST
	Port         int    // PORT
	ModelPath    string // MODEL_PATH
	ManifestPath string // MODEL_MANIFEST

	ServiceName     string // OTEL_SERVICE_NAME
	MetricsExporter string // OTEL_METRICS_EXPORTER: prometheus | otlp | console | none
	PrometheusHost  string // OTEL_EXPORTER_PROMETHEUS_HOST, defaults to Host
	PrometheusPort  int    // OTEL_EXPORTER_PROMETHEUS_PORT

	// ORT_INTRA_OP_NUM_THREADS: 1 by default, because the service runs under a 0.5 CPU quota
	// and parallelism comes from concurrent requests sharing one session; a per-request
	// thread pool would only add contention and context switches. 0 = ORT's default (one
	// thread per visible core).
	IntraOpThreads int
	// ORT_ALLOW_SPINNING: off by default. Spinning pool threads burn the CFS quota while
	// waiting for work, which throttles the whole process under 0.5 CPU.
	AllowSpinning bool
	// ORT_SHARED_LIB_PATH: the libonnxruntime.so taken from the pinned onnxruntime wheel.
	OrtSharedLibPath string
}

// Addr is the API's listen address.
func (c Config) Addr() string { return joinHostPort(c.Host, c.Port) }

// PrometheusAddr is the scrape endpoint's listen address.
func (c Config) PrometheusAddr() string { return joinHostPort(c.PrometheusHost, c.PrometheusPort) }

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") { // IPv6 literal
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

// Load reads the configuration through lookup (os.LookupEnv in main, a map in tests). The
// error names the variable, the value and what was expected, in one line.
func Load(lookup func(string) (string, bool)) (Config, error) {
	get := func(name, fallback string) string {
		if value, ok := lookup(name); ok && strings.TrimSpace(value) != "" {
			return strings.TrimSpace(value)
		}
		return fallback
	}
	var cfg Config
	var err error
	cfg.Host = get("HOST", "127.0.0.1")
	if cfg.Port, err = parsePort("PORT", get("PORT", "5000")); err != nil {
		return Config{}, err
	}
	cfg.ModelPath = get("MODEL_PATH", "artifacts/model.onnx")
	cfg.ManifestPath = get("MODEL_MANIFEST", "artifacts/manifest.json")
	cfg.ServiceName = get("OTEL_SERVICE_NAME", ServiceName)

	cfg.MetricsExporter = strings.ToLower(get("OTEL_METRICS_EXPORTER", "prometheus"))
	switch cfg.MetricsExporter {
	case "prometheus", "otlp", "console", "none":
	default:
		return Config{}, fmt.Errorf("OTEL_METRICS_EXPORTER=%q is not supported: expected prometheus, otlp, console or none", cfg.MetricsExporter)
	}
	cfg.PrometheusHost = get("OTEL_EXPORTER_PROMETHEUS_HOST", cfg.Host)
	if cfg.PrometheusPort, err = parsePort("OTEL_EXPORTER_PROMETHEUS_PORT", get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464")); err != nil {
		return Config{}, err
	}
	if cfg.MetricsExporter == "prometheus" && cfg.PrometheusAddr() == cfg.Addr() {
		return Config{}, fmt.Errorf("OTEL_EXPORTER_PROMETHEUS_PORT=%d is the API's own address %s: expected a separate port for /metrics", cfg.PrometheusPort, cfg.Addr())
	}

	threads := get("ORT_INTRA_OP_NUM_THREADS", "1")
	cfg.IntraOpThreads, err = strconv.Atoi(threads)
	if err != nil || cfg.IntraOpThreads < 0 || cfg.IntraOpThreads > 1024 {
		return Config{}, fmt.Errorf("ORT_INTRA_OP_NUM_THREADS=%q is invalid: expected an integer from 0 (ORT default) to 1024", threads)
	}
	switch spinning := get("ORT_ALLOW_SPINNING", "0"); spinning {
	case "0":
		cfg.AllowSpinning = false
	case "1":
		cfg.AllowSpinning = true
	default:
		return Config{}, fmt.Errorf("ORT_ALLOW_SPINNING=%q is invalid: expected 0 or 1", spinning)
	}
	// A bare file name makes dlopen search the library path (LD_LIBRARY_PATH, ld.so.cache).
	cfg.OrtSharedLibPath = get("ORT_SHARED_LIB_PATH", "libonnxruntime.so")
	return cfg, nil
}

func parsePort(name, value string) (int, error) {
	port, err := strconv.Atoi(value)
	if err != nil || port < 1 || port > 65535 {
		return 0, fmt.Errorf("%s=%q is invalid: expected a TCP port number from 1 to 65535", name, value)
	}
	return port, nil
}
