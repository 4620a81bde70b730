package telemetry

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// prometheus: the histogram is scraped over HTTP from the reader's own server, which Shutdown
// closes (the port is free again for the next start).
func TestPrometheusExporterServesTheHistogramAndStopsWithShutdown(t *testing.T) {
	port := freePort(t)
	tel, err := Setup(context.Background(), Settings{ServiceName: "go-api-onnx-test", Metrics: "prometheus", Traces: "none", PrometheusHost: "127.0.0.1", PrometheusPort: port})
	if err != nil {
		t.Fatal(err)
	}
	serve(tel.Instrument(router(tel.Middleware()), []string{"/predict", "/healthz"}))
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/metrics"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="422",http_route="/predict"`
	if !strings.Contains(string(body), want) || !strings.Contains(string(body), `service_name="go-api-onnx-test"`) {
		t.Errorf("GET /metrics lacks %s or target_info's service_name:\n%s", want, body)
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(url); err == nil {
		t.Errorf("GET /metrics still answers after Shutdown")
	}
}

func TestEveryAcceptedMetricsExporterStartsAndAnUnknownOneIsAnError(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1") // nothing is exported here
	for _, name := range []string{"otlp", "console"} {
		tel, err := Setup(context.Background(), Settings{ServiceName: "x", Metrics: name, Traces: "none"})
		if err != nil || tel.meters == nil {
			t.Fatalf("%s: %v (meters %v)", name, err, tel)
		}
		shutdownQuickly(t, tel)
	}
	if _, err := Setup(context.Background(), Settings{ServiceName: "x", Metrics: "zipkin", Traces: "none"}); err == nil || !strings.Contains(err.Error(), "zipkin") {
		t.Errorf("zipkin: error %v, want one naming it", err)
	}
}

// shutdownQuickly: an OTLP exporter flushes to an address that refuses; only the call's
// return matters here, not the export.
func shutdownQuickly(t *testing.T, tel *Telemetry) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = tel.Shutdown(ctx)
}
