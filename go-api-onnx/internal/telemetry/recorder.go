package telemetry

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const (
	durationName = "http.server.request.duration"
	// statusClientClosedRequest is recorded for a request whose handler was aborted because
	// the client left before its body arrived (httpapi.StatusClientClosedRequest; CONTRACT.md).
	statusClientClosedRequest = 499
	// maxAttributeSets bounds the cache of attribute sets: methods and statuses vary little,
	// but a client could send many unknown methods (all recorded as _OTHER anyway).
	maxAttributeSets = 256
)

// durationRecorder records http.server.request.duration for every request but the excluded
// paths, with otelhttp's attributes for it (stable HTTP semantic conventions) but the two
// taken from the client's Host header (server.address, server.port: a label whose values the
// client picks): http.request.method (_OTHER for unknown methods), url.scheme,
// network.protocol.name and .version, http.response.status_code, and http.route for a path
// the router serves (also on its 405; absent on a 404).
//
// Why not otelhttp when there are no spans: per request it starts a (non-recording) span,
// extracts propagation headers, wraps the body and the writer through httpsnoop, records
// three histograms (request and response body sizes too), and builds and sorts a fresh
// attribute set for each — a large share of a request's CPU on this service
// (services/CONTRACT.md, last section, has the numbers). Here: two clock reads, one cached
// attribute set, one Record.
type durationRecorder struct {
	next      http.Handler
	histogram metric.Float64Histogram
	routes    map[string]bool
	excluded  string // a path that is not recorded (/healthz)

	mu      sync.RWMutex
	options map[attributeKey][]metric.RecordOption
}

type attributeKey struct {
	method, route string
	status        int
	proto         string
}

func newDurationRecorder(next http.Handler, provider metric.MeterProvider, routes []string, excluded string) *durationRecorder {
	histogram, _ := provider.Meter("onnx-serving-study/go-api-onnx/internal/telemetry").Float64Histogram(durationName,
		metric.WithUnit("s"), metric.WithDescription("Duration of HTTP server requests."),
		metric.WithExplicitBucketBoundaries(LatencyBucketsSeconds...))
	d := &durationRecorder{next: next, histogram: histogram, routes: map[string]bool{}, excluded: excluded,
		options: map[attributeKey][]metric.RecordOption{}}
	for _, route := range routes {
		d.routes[route] = true
	}
	return d
}

func (d *durationRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == d.excluded {
		d.next.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	completed := false
	defer func() {
		// Only http.ErrAbortHandler gets here (the router answers every other panic with a
		// 500): the handler gave up on a client that left mid-body, a client abort.
		if !completed {
			d.histogram.Record(r.Context(), time.Since(start).Seconds(), d.optionsFor(r, statusClientClosedRequest)...)
		}
	}()
	d.next.ServeHTTP(sw, r)
	completed = true
	if sw.status == 0 {
		sw.status = http.StatusOK // nothing written: net/http answers 200
	}
	d.histogram.Record(r.Context(), time.Since(start).Seconds(), d.optionsFor(r, sw.status)...)
}

// optionsFor is the cached WithAttributeSet option for the request's attributes.
func (d *durationRecorder) optionsFor(r *http.Request, status int) []metric.RecordOption {
	key := attributeKey{method: r.Method, status: status, proto: r.Proto}
	if d.routes[r.URL.Path] {
		key.route = r.URL.Path
	}
	d.mu.RLock()
	options, ok := d.options[key]
	d.mu.RUnlock()
	if ok {
		return options
	}
	method := key.method
	switch method {
	case "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "QUERY":
	default:
		method = "_OTHER"
	}
	attributes := []attribute.KeyValue{
		attribute.String("http.request.method", method),
		attribute.String("url.scheme", "http"),
		attribute.String("network.protocol.name", "http"),
		attribute.String("network.protocol.version", strconv.Itoa(r.ProtoMajor)+"."+strconv.Itoa(r.ProtoMinor)),
		attribute.Int("http.response.status_code", status),
	}
	if key.route != "" {
		attributes = append(attributes, attribute.String("http.route", key.route))
	}
	options = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attributes...))}
	d.mu.Lock()
	if len(d.options) < maxAttributeSets {
		d.options[key] = options
	}
	d.mu.Unlock()
	return options
}

// statusWriter notes the status the handler answers with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}
