package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"testing"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// router is a stand-in for httpapi's: /predict answers 422, /healthz 200; chi answers 404 and
// 405 (also for an unknown method anywhere, which httpapi's router turns into a 404).
func router(middleware []func(http.Handler) http.Handler) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware...)
	r.Post("/predict", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(422) })
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {})
	return r
}

func serve(h http.Handler) {
	for _, req := range []*http.Request{
		httptest.NewRequest("POST", "/predict", nil),
		httptest.NewRequest("POST", "/predict", nil),
		httptest.NewRequest("GET", "/healthz", nil),
		httptest.NewRequest("GET", "/nope", nil),
		httptest.NewRequest("GET", "/predict", nil),
		httptest.NewRequest("FOO", "/nope", nil),
	} {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// recorded is "method route status" → count of http.server.request.duration, and each
// series' attribute keys.
func recorded(t *testing.T, reader sdkmetric.Reader) (map[string]uint64, map[string][]string) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if name, _ := rm.Resource.Set().Value("service.name"); name.AsString() != "go-api-onnx-test" {
		t.Errorf("service.name = %q", name.AsString())
	}
	if id, _ := rm.Resource.Set().Value("service.instance.id"); len(id.AsString()) != 36 {
		t.Errorf("service.instance.id = %q, want a UUID", id.AsString())
	}
	counts, keys := map[string]uint64{}, map[string][]string{}
	for _, scope := range rm.ScopeMetrics {
		for _, m := range scope.Metrics {
			if m.Name != durationName {
				continue
			}
			if m.Unit != "s" {
				t.Errorf("unit %q, want s", m.Unit)
			}
			for _, p := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				if !slices.Equal(p.Bounds, LatencyBucketsSeconds) {
					t.Errorf("buckets %v, want the contract's %v", p.Bounds, LatencyBucketsSeconds)
				}
				route, _ := p.Attributes.Value("http.route")
				status, _ := p.Attributes.Value("http.response.status_code")
				method, _ := p.Attributes.Value("http.request.method")
				series := method.AsString() + " " + route.AsString() + " " + status.Emit()
				counts[series] += p.Count
				for _, kv := range p.Attributes.ToSlice() {
					keys[series] = append(keys[series], string(kv.Key))
				}
			}
		}
	}
	return counts, keys
}

func withMeters(t *testing.T, spans bool) (*Telemetry, *sdkmetric.ManualReader) {
	t.Helper()
	res, err := newResource(context.Background(), "go-api-onnx-test")
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	tel := &Telemetry{}
	tel.setMeters(reader, res, spans)
	t.Cleanup(func() { tel.Shutdown(context.Background()) })
	return tel, reader
}

// Metrics without spans: the lean recorder, no middleware inside the router.
func TestDurationRecorderCarriesRouteStatusMethodAndSkipsHealthz(t *testing.T) {
	tel, reader := withMeters(t, false)
	if tel.Middleware() != nil {
		t.Errorf("middleware inside the router: %v, want none", tel.Middleware())
	}
	h := tel.Instrument(router(tel.Middleware()), []string{"/predict", "/healthz"})
	if _, ok := h.(*durationRecorder); !ok {
		t.Fatalf("Instrument gave %T, want the lean recorder", h)
	}
	serve(h)
	counts, keys := recorded(t, reader)
	want := map[string]uint64{"POST /predict 422": 2, "GET  404": 1, "GET /predict 405": 1, "_OTHER  405": 1}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("recorded %v, want exactly %v", counts, want)
	}
	wantKeys := []string{"http.request.method", "http.response.status_code", "http.route", "network.protocol.name", "network.protocol.version", "url.scheme"}
	if !slices.Equal(keys["POST /predict 422"], wantKeys) {
		t.Errorf("attributes %v, want %v", keys["POST /predict 422"], wantKeys)
	}
}

// A handler aborted with http.ErrAbortHandler (the client left mid-body) is a client abort:
// recorded as 499, and the panic still reaches net/http, which closes the connection.
func TestAbortedHandlerIsRecordedAs499(t *testing.T) {
	tel, reader := withMeters(t, false)
	r := chi.NewRouter()
	r.Post("/predict", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	h := tel.Instrument(r, []string{"/predict"})
	func() {
		defer func() {
			if recovered := recover(); recovered != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler passed on", recovered)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/predict", nil))
	}()
	if counts, _ := recorded(t, reader); !reflect.DeepEqual(counts, map[string]uint64{"POST /predict 499": 1}) {
		t.Errorf("recorded %v, want one POST /predict 499", counts)
	}
}

// Spans on (as published): otelhttp records the histogram and a span per request, named
// "METHOD route" by RouteLabel; /healthz has neither.
func TestSpansNameTheRouteAndTheHistogramStillCarriesIt(t *testing.T) {
	tel, reader := withMeters(t, true)
	spans := tracetest.NewInMemoryExporter()
	tel.tracer = sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	serve(tel.Instrument(router(tel.Middleware()), []string{"/predict", "/healthz"}))

	var names []string
	for _, span := range spans.GetSpans() {
		names = append(names, span.Name)
		if span.Name == "POST /predict" && !slices.Contains(span.Attributes, attribute.String("http.route", "/predict")) {
			t.Errorf("span %q has no http.route: %v", span.Name, span.Attributes)
		}
	}
	slices.Sort(names)
	if want := []string{"GET", "GET", "HTTP", "POST /predict", "POST /predict"}; !slices.Equal(names, want) {
		t.Errorf("spans %v, want %v", names, want)
	}
	counts, _ := recorded(t, reader)
	if counts["POST /predict 422"] != 2 || counts["GET /healthz 200"] != 0 {
		t.Errorf("recorded %v, want 2 for POST /predict 422 and no /healthz", counts)
	}
}

func TestTelemetryOffInstallsNothing(t *testing.T) {
	tel, err := Setup(context.Background(), Settings{ServiceName: "x", Metrics: "none", Traces: "none"})
	if err != nil {
		t.Fatal(err)
	}
	h := router(nil)
	if got := tel.Instrument(h, nil); reflect.ValueOf(got).Pointer() != reflect.ValueOf(h).Pointer() || tel.Middleware() != nil {
		t.Errorf("telemetry off wrapped the router (%T) or added middleware", got)
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
