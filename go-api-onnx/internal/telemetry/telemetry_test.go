package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestDurationHistogramCarriesRouteStatusMethodAndSkipsHealthz(t *testing.T) {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	tel, err := withReader(ctx, reader, "go-api-onnx-test")
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(ctx)

	r := chi.NewRouter()
	r.Use(RouteLabel)
	r.Post("/predict", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(422) })
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {})
	h := tel.Instrument(r)
	for _, req := range []*http.Request{
		httptest.NewRequest("POST", "/predict", nil),
		httptest.NewRequest("POST", "/predict", nil),
		httptest.NewRequest("GET", "/healthz", nil),
		httptest.NewRequest("GET", "/nope", nil),
	} {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	if name, _ := rm.Resource.Set().Value("service.name"); name.AsString() != "go-api-onnx-test" {
		t.Errorf("service.name = %q", name.AsString())
	}
	var points []metricdata.HistogramDataPoint[float64]
	for _, scope := range rm.ScopeMetrics {
		for _, m := range scope.Metrics {
			if m.Name == "http.server.request.duration" {
				if m.Unit != "s" {
					t.Errorf("unit %q, want s", m.Unit)
				}
				points = append(points, m.Data.(metricdata.Histogram[float64]).DataPoints...)
			}
		}
	}
	counts := map[string]uint64{}
	for _, p := range points {
		route, _ := p.Attributes.Value("http.route")
		status, _ := p.Attributes.Value("http.response.status_code")
		method, _ := p.Attributes.Value("http.request.method")
		counts[method.AsString()+" "+route.AsString()+" "+status.Emit()] += p.Count
		if route.AsString() == "/healthz" {
			t.Errorf("/healthz recorded: %v", p.Attributes)
		}
	}
	want := map[string]uint64{"POST /predict 422": 2, "GET  404": 1}
	for key, n := range want {
		if counts[key] != n {
			t.Errorf("%q: %d requests recorded, want %d (all: %v)", key, counts[key], n, counts)
		}
	}
	if len(counts) != len(want) {
		t.Errorf("recorded series %v, want exactly %v", counts, want)
	}
}

func TestSetupNoneNeedsNoExporter(t *testing.T) {
	tel, err := Setup(context.Background(), Settings{ServiceName: "x", Exporter: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
