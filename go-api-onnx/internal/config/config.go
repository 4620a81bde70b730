// Package config reads the service's settings from the environment, with the defaults and
// names fixed by services/CONTRACT.md, and rejects invalid values before anything is loaded
// or bound.
package config

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ServiceName is the default OTEL_SERVICE_NAME.
const ServiceName = "go-api-onnx"

// Config is every setting the service reads; nothing else is read from the environment except
// by the OpenTelemetry exporters themselves (OTEL_EXPORTER_OTLP_*, OTEL_METRIC_EXPORT_INTERVAL)
// and by the Go runtime (GOMAXPROCS, GODEBUG), which Load only checks.
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

	// Measurement and as-published settings (CONTRACT.md, last section); the defaults are
	// the tuned configuration.
	PredictStage    string        // PREDICT_STAGE: full | parse | noop
	AccessLog       bool          // ACCESS_LOG: chi's middleware.Logger, a line per request
	TracesExporter  string        // OTEL_TRACES_EXPORTER: none | otlp (OTLP/HTTP)
	SpanExportDelay time.Duration // OTEL_BSP_SCHEDULE_DELAY, milliseconds in the environment

	// What one client may hold (CONTRACT.md, "Abusive clients"), with the Python services'
	// names and defaults; net/http's fields of the same meaning.
	MaxHeaderBytes    int           // HTTP_MAX_HEADER_BYTES: http.Server.MaxHeaderBytes
	ReadHeaderTimeout time.Duration // HTTP_READ_HEADER_TIMEOUT, seconds in the environment
	ReadTimeout       time.Duration // HTTP_READ_TIMEOUT, seconds: the whole request, body included
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
	env := reader{lookup: lookup}
	cfg := Config{
		Host:             env.get("HOST", "127.0.0.1"),
		Port:             env.integer("PORT", "5000", 1, 65535, "a TCP port number"),
		ModelPath:        env.get("MODEL_PATH", "artifacts/model.onnx"),
		ManifestPath:     env.get("MODEL_MANIFEST", "artifacts/manifest.json"),
		ServiceName:      env.get("OTEL_SERVICE_NAME", ServiceName),
		MetricsExporter:  env.choice("OTEL_METRICS_EXPORTER", "prometheus", "prometheus", "otlp", "console", "none"),
		PrometheusPort:   env.integer("OTEL_EXPORTER_PROMETHEUS_PORT", "9464", 1, 65535, "a TCP port number"),
		IntraOpThreads:   env.integer("ORT_INTRA_OP_NUM_THREADS", "1", 0, 1024, "an integer (0 = ORT's default)"),
		AllowSpinning:    env.flag("ORT_ALLOW_SPINNING"),
		OrtSharedLibPath: env.get("ORT_SHARED_LIB_PATH", "libonnxruntime.so"), // a bare name: dlopen searches
		PredictStage:     env.choice("PREDICT_STAGE", "full", "full", "parse", "noop"),
		AccessLog:        env.flag("ACCESS_LOG"),
		// OTel's own default for an unset variable is otlp; the contract's is none.
		TracesExporter: env.choice("OTEL_TRACES_EXPORTER", "none", "none", "otlp"),
		// Read by the SDK too, but checked here so a typo is exit 2, not a silent default.
		SpanExportDelay: time.Millisecond * time.Duration(env.integer("OTEL_BSP_SCHEDULE_DELAY", "5000", 1, 3_600_000, "milliseconds")),
	}
	cfg.MaxHeaderBytes = env.integer("HTTP_MAX_HEADER_BYTES", "16384", 1024, 1<<20, "a number of bytes")
	cfg.ReadHeaderTimeout = time.Second * time.Duration(env.integer("HTTP_READ_HEADER_TIMEOUT", "5", 1, 3600, "seconds"))
	cfg.ReadTimeout = time.Second * time.Duration(env.integer("HTTP_READ_TIMEOUT", "15", 1, 3600, "seconds"))
	if env.err == nil && cfg.ReadTimeout < cfg.ReadHeaderTimeout {
		env.fail("HTTP_READ_TIMEOUT=%d is shorter than HTTP_READ_HEADER_TIMEOUT=%d: expected a whole request to be allowed at least as long as its head",
			int(cfg.ReadTimeout.Seconds()), int(cfg.ReadHeaderTimeout.Seconds()))
	}
	cfg.PrometheusHost = env.get("OTEL_EXPORTER_PROMETHEUS_HOST", cfg.Host)
	env.gomaxprocs()
	if cfg.MetricsExporter == "otlp" || cfg.TracesExporter == "otlp" {
		for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"} {
			env.httpURL(name)
		}
		// Only the OTLP/HTTP exporters are linked (no gRPC client in the binary): a request
		// for grpc is refused rather than silently sent over HTTP to a gRPC port.
		for _, name := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"} {
			env.choice(name, "http/protobuf", "http/protobuf")
		}
	}
	if env.err != nil {
		return Config{}, env.err
	}
	if cfg.MetricsExporter == "prometheus" && cfg.PrometheusAddr() == cfg.Addr() {
		return Config{}, fmt.Errorf("OTEL_EXPORTER_PROMETHEUS_PORT=%d is the API's own address %s: expected a separate port for /metrics", cfg.PrometheusPort, cfg.Addr())
	}
	return cfg, nil
}

// reader reads variables, keeping the first invalid one's error.
type reader struct {
	lookup func(string) (string, bool)
	err    error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

// get is the trimmed value, or fallback when the variable is unset or blank.
func (r *reader) get(name, fallback string) string {
	if value, ok := r.lookup(name); ok && strings.TrimSpace(value) != "" {
		return strings.TrimSpace(value)
	}
	return fallback
}

// choice is one of a few words, compared case-insensitively.
func (r *reader) choice(name, fallback string, choices ...string) string {
	value := strings.ToLower(r.get(name, fallback))
	if !slices.Contains(choices, value) {
		r.fail("%s=%q is not supported: expected one of %s", name, value, strings.Join(choices, ", "))
	}
	return value
}

func (r *reader) integer(name, fallback string, lowest, highest int, what string) int {
	value := r.get(name, fallback)
	n, err := strconv.Atoi(value)
	if err != nil || n < lowest || n > highest {
		r.fail("%s=%q is invalid: expected %s from %d to %d", name, value, what, lowest, highest)
	}
	return n
}

// flag is a switch spelled 0 or 1, 0 when unset.
func (r *reader) flag(name string) bool {
	value := r.get(name, "0")
	if value != "0" && value != "1" {
		r.fail("%s=%q is invalid: expected 0 or 1", name, value)
	}
	return value == "1"
}

// httpURL checks an OTLP endpoint, when set: an exporter would otherwise fail every export
// in the background, silently.
func (r *reader) httpURL(name string) {
	if value := r.get(name, ""); value != "" {
		if u, err := url.Parse(value); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			r.fail("%s=%q is not an http(s) URL: expected e.g. http://127.0.0.1:4318", name, value)
		}
	}
}

// gomaxprocs checks GOMAXPROCS the way the Go runtime reads it (a base-10 int32 above 0, not
// trimmed), because the runtime silently ignores anything else and keeps its default.
func (r *reader) gomaxprocs() {
	if value, _ := r.lookup("GOMAXPROCS"); value != "" {
		if n, err := strconv.ParseInt(value, 10, 32); err != nil || n < 1 {
			r.fail("GOMAXPROCS=%q is invalid: expected a positive integer (the Go runtime would ignore it)", value)
		}
	}
}
