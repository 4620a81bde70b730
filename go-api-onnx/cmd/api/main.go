// Command api serves the iris pipeline (model.onnx) over HTTP with ONNX Runtime, answering
// services/CONTRACT.md exactly like the two Python services.
//
// Start-up order: configuration → model sha256 check against the manifest → ORT session →
// telemetry exporters → listen. Any configuration or model problem prints one line on stderr
// and exits with status 2 before anything is bound. SIGTERM (or Ctrl-C) stops accepting, lets
// in-flight requests finish, flushes spans and metrics and exits 0.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"onnx-serving-study/go-api-onnx/internal/config"
	"onnx-serving-study/go-api-onnx/internal/httpapi"
	"onnx-serving-study/go-api-onnx/internal/model"
	"onnx-serving-study/go-api-onnx/internal/telemetry"
)

// After SIGTERM: in-flight requests get shutdownGrace, then the exporters flushGrace (an
// unreachable collector is retried for a minute otherwise); together below Docker's 10 s stop
// timeout, as in the Python services.
const (
	shutdownGrace = 5 * time.Second
	flushGrace    = 3 * time.Second
)

func main() { os.Exit(run()) }

// fail prints the one stderr line the contract asks for and returns the exit status.
func fail(status int, err error) int {
	fmt.Fprintf(os.Stderr, "go-api-onnx: %v\n", err)
	return status
}

// unixSeconds is a wall-clock time as /healthz's "startup" shows it.
func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func run() int {
	startup := &httpapi.Startup{ImportsDone: unixSeconds(time.Now())}
	cfg, err := config.Load(os.LookupEnv)
	if err != nil {
		return fail(2, err)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil)).With("service", cfg.ServiceName)
	slog.SetDefault(logger)

	// GOMAXPROCS is left to the Go runtime on purpose. Since Go 1.25 (and with go ≥ 1.25 in
	// go.mod) it follows the cgroup CPU limit, rounded up and never below 2: a 0.5 CPU quota
	// gives GOMAXPROCS=2, not 1. GOMAXPROCS=N overrides it (config checked the value, which
	// the runtime would silently ignore if invalid); GODEBUG=containermaxprocs=0 gives the
	// CPUs of the affinity mask, what the post's go.mod (go 1.23.2) meant.
	logger.Info("starting", "gomaxprocs", runtime.GOMAXPROCS(0), "num_cpu", runtime.NumCPU(),
		"go", runtime.Version(), "intra_op_threads", cfg.IntraOpThreads, "allow_spinning", cfg.AllowSpinning,
		"predict_stage", cfg.PredictStage, "access_log", cfg.AccessLog,
		"metrics_exporter", cfg.MetricsExporter, "traces_exporter", cfg.TracesExporter)

	manifest, err := model.LoadManifest(cfg.ManifestPath)
	if err != nil {
		return fail(2, err)
	}
	ortVersion, err := model.InitRuntime(cfg.OrtSharedLibPath)
	if err != nil {
		return fail(2, err)
	}
	defer model.ShutdownRuntime()
	classifier, err := model.Load(cfg.ModelPath, manifest, model.Options{
		IntraOpThreads: cfg.IntraOpThreads, AllowSpinning: cfg.AllowSpinning,
	})
	if err != nil {
		return fail(2, err)
	}
	defer classifier.Close()
	startup.ModelLoaded = unixSeconds(time.Now())
	runtimeText := fmt.Sprintf("onnxruntime %s (onnxruntime_go; %s)", ortVersion, classifier.Description())
	logger.Info("model loaded", "model", cfg.ModelPath, "sha256", classifier.SHA256(), "runtime", runtimeText)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	tel, err := telemetry.Setup(ctx, telemetry.Settings{
		ServiceName: cfg.ServiceName, Metrics: cfg.MetricsExporter,
		Traces: cfg.TracesExporter, SpanExportDelay: cfg.SpanExportDelay,
		PrometheusHost: cfg.PrometheusHost, PrometheusPort: cfg.PrometheusPort,
	})
	if err != nil {
		return fail(1, err)
	}
	router := httpapi.NewRouter(classifier, httpapi.Options{
		Runtime:    runtimeText,
		Middleware: tel.Middleware(),
		Logger:     logger,
		AccessLog:  cfg.AccessLog,
		Stage:      cfg.PredictStage,
		Fixed:      classifier.Warmup(),
		Startup:    startup,
	})
	// The read limits are the contract's HTTP_* settings (the Python services read the same);
	// net/http closes a connection whose head is late or too large (431) by itself.
	server := &http.Server{
		Handler:           tel.Instrument(router, httpapi.Routes()),
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      30 * time.Second, // a response's whole life, queueing under overload included
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	listener, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		_ = tel.Shutdown(context.Background())
		return fail(1, fmt.Errorf("listening on %s (HOST, PORT): %w", cfg.Addr(), err))
	}
	startup.Listening = unixSeconds(time.Now()) // before Serve: no request reads it earlier
	attrs := []any{"addr", listener.Addr().String(), "metrics_exporter", cfg.MetricsExporter,
		"framework", httpapi.Framework, "max_header_bytes", cfg.MaxHeaderBytes,
		"read_header_timeout_s", cfg.ReadHeaderTimeout.Seconds(), "read_timeout_s", cfg.ReadTimeout.Seconds(),
		"imports_done_unix", startup.ImportsDone, "model_loaded_unix", startup.ModelLoaded, "listening_unix", startup.Listening}
	if cfg.MetricsExporter == "prometheus" {
		attrs = append(attrs, "metrics_addr", cfg.PrometheusAddr())
	}
	logger.Info("listening", attrs...)

	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(listener) }()
	status := 0
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "reason", "signal")
	case err := <-serveErr:
		logger.Error("server stopped", "error", err)
		status = 1
	}

	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error("server shutdown", "error", err)
		status = 1
	}
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), flushGrace)
	defer cancelFlush()
	if err := tel.Shutdown(flushCtx); err != nil {
		logger.Error("telemetry shutdown", "error", err)
		status = 1
	}
	logger.Info("stopped", "status", status)
	return status
}
